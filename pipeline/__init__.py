"""finpulse.pipeline"""
