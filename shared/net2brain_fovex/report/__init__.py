"""The HTML report of a run folder: what it holds (`contents`) and its page (`page`)."""
from .._exports import lazy_exports

# the page's default name in the folder it describes (light: the command line's help names it)
REPORT_NAME = "report.html"

_EXPORTS = {
    "RunContents": "contents",
    "scan_run": "contents",
    "report_to_file": "page",
}
__all__ = ["REPORT_NAME", *_EXPORTS]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
