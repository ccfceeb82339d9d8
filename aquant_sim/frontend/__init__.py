"""The calibration front-end (torch only): capture a CNN, fold batch norms, quantize it with
learned weight rounding and learned activation borders by block reconstruction, and lower it to
the integer program that the simulator runs. ``docs/calibration.md`` derives the methods."""
