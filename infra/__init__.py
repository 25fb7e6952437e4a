"""finpulse.infra"""
