"""hudlib: companion library of the HUD paper."""
__version__ = "0.1.0"
