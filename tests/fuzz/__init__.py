"""atheris fuzz targets (``make fuzz``) and their runner, ``run_fuzz.py``."""
