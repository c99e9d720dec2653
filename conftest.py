"""The test suite (pytest, nbval) runs every notebook at the smoke profile: the notebooks' parameters cells default
to quick from the shipped weights, unless ``HUD_NOTEBOOK_PROFILE`` names another profile (their kernels inherit
this process's environment)."""
import os

os.environ.setdefault("HUD_NOTEBOOK_PROFILE", "smoke")
