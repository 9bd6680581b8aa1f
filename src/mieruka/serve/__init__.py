"""`mieruka serve`: a local web viewer over one loaded model (needs the ``serve`` extra).

Open a photo (upload it, or pick it from the served folder), choose the methods, the layer and the
class, and see the maps on the photo side by side; the page colours the maps itself, so colormap and
opacity change without a new computation. Starlette + uvicorn: a small ASGI stack, imported only here.

>>> from mieruka.serve import Viewer, create_app
>>> app = create_app(Viewer(load_model("resnet18", "ft.pth", num_classes=5)), "photos/")
"""

from __future__ import annotations

from .app import create_app, listen, serve
from .viewer import Viewer

__all__ = ["Viewer", "create_app", "listen", "serve"]
