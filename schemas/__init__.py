"""finpulse.schemas"""
