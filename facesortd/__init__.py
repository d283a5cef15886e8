"""facesortd: sort anime reaction screenshots into emotion folders."""

import os

# OpenCV refuses to decode more pixels than this (its own bomb guard, for formats whose header
# facesortd does not parse itself). Must be set before cv2 is first imported.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))

__version__ = "0.1.0"
