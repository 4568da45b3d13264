"""``python -m analyses.report``: build the PDF from the results on disk."""

from analyses.report.build import main

raise SystemExit(main())
