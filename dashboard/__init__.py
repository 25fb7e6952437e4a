"""finpulse.dashboard"""
