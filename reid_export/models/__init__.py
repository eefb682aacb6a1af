"""The networks: ReidNet (a ResNet or OSNet backbone, BNNeck, ID and attribute heads) and the OSNet blocks.

`net` holds ReidNet, its config and weight loading; `osnet` the OSNet backbone written from the paper.
Importers of weights trained by other projects live beside them."""

from .net import *  # noqa: F401,F403 - the package's public names are net's
from .net import __all__  # noqa: F401
