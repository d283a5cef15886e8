"""``python -m facesortd.cascade_train``: ``facesortd train-detector`` by its older name (the
provenance commands in cascade_classifier/README.md were run so); ``python -m
facesortd.cascade_train gate ...`` trains the detection gate, which no facesortd command does."""

import argparse
import sys

from loguru import logger

logger.remove()
logger.add(
    sys.stderr, level="INFO", format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message}"
)
if sys.argv[1:2] == ["gate"]:
    from facesortd.cascade_train import gate_net

    parser = argparse.ArgumentParser(
        prog="python -m facesortd.cascade_train gate",
        description="Train the detection gate: a small net marking where the cascade's full-size pass looks "
        "(needs PyTorch). Writes the .npz that detection.gate points at.",
    )
    gate_net.add_arguments(parser)
    sys.exit(gate_net.run(parser.parse_args(sys.argv[2:])))

from facesortd.cascade_train.command import add_arguments, run  # noqa: E402

parser = argparse.ArgumentParser(
    prog="python -m facesortd.cascade_train",
    description="Train an LBP cascade (OpenCV XML) for anime faces, mining hard negatives between stages. "
    "(`python -m facesortd.cascade_train gate --help`: the detection gate.)",
)
add_arguments(parser)
sys.exit(run(parser.parse_args()))
