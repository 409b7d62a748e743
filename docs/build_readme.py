"""Assemble README.md from the sections in docs/readme/ (run: python docs/build_readme.py)."""

from pathlib import Path

ORDER = [
    "00-intro.md", "data.md", "world.md", "graph.md", "covisit.md", "geolocation.md", "tracking.md",
    "analytics.md", "scaling.md", "reliability.md", "benchmarks.md", "development.md",
]

here = Path(__file__).parent / "readme"
parts = [(here / name).read_text().strip() for name in ORDER if (here / name).exists()]
missing = [name for name in ORDER if not (here / name).exists()]
out = Path(__file__).parent.parent / "README.md"
tmp = out.with_suffix(".md.tmp")
tmp.write_text("\n\n".join(parts) + "\n")
tmp.replace(out)
print(f"README.md: {len(parts)} sections" + (f" (missing: {', '.join(missing)})" if missing else ""))
