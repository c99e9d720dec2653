"""hudlib: companion library of the HUD paper."""
from ._malloc import tune_malloc as _tune_malloc

__version__ = "0.1.0"
_tune_malloc()  # large temporary blocks stay in the process (hudlib._malloc; HUD_MALLOC=off keeps the defaults)
