"""facesortd: sort anime reaction screenshots into emotion folders."""

__version__ = "0.1.0"
