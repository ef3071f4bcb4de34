"""Command-line tools for running and developing the shop (not imported by services)."""
import warnings

# nameko 2.14 imports eventlet, which warns on every start that it is deprecated
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
