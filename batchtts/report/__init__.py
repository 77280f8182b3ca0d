"""``batchtts report DIR``: one self-contained HTML page about a job folder, finished, running or not.

A lazy front (see :mod:`batchtts._lazy`): load the folder (:mod:`.folder`, :mod:`.rows`), compute the
figures in one streamed pass (:mod:`.figures`), draw them (:mod:`.charts`) and write the page
(:mod:`.page`).
"""

from batchtts._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "JobFolder": "batchtts.report.folder",
        "open_job_folder": "batchtts.report.folder",
        "Figures": "batchtts.report.figures",
        "collect_figures": "batchtts.report.figures",
        "render_page": "batchtts.report.page",
        "write_report": "batchtts.report.page",
    },
)
