"""``python -m facesortd.cascade_train``: train-detector until the main CLI carries it."""

import argparse
import sys

from loguru import logger

from facesortd.cascade_train.command import add_arguments, run

parser = argparse.ArgumentParser(
    prog="python -m facesortd.cascade_train",
    description="Train an LBP cascade (OpenCV XML) for anime faces, mining hard negatives between stages.",
)
add_arguments(parser)
logger.remove()
logger.add(
    sys.stderr, level="INFO", format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"
)
sys.exit(run(parser.parse_args()))
