"""finpulse.models"""
