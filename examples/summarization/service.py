"""An extractive summarizer: scores sentences by the frequency of their words, keeps the best.

numpy is imported when the service starts, not at module level, so that `ocibuild build` can
import this file on a machine without the service's dependencies.
"""

import os
import re

import ocibuild

image = ocibuild.images.PythonImage(python_version="3.11").python_packages("numpy>=1.26")

STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were will with".split()
)


@ocibuild.service(
    image=image,
    envs=[{"name": "SUMMARY_API_KEY"}, {"name": "SUMMARY_SENTENCES", "value": "2"}],
)
class Summarization:
    def __init__(self) -> None:
        import numpy

        self.np = numpy
        self.default_sentences = int(os.environ.get("SUMMARY_SENTENCES", "2"))

    @ocibuild.api
    def summarize(self, text: str, sentences: int | None = None) -> str:
        """Return the most informative sentences of `text`, in their original order."""
        parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
        keep = sentences or self.default_sentences
        if len(parts) <= keep:
            return " ".join(parts)
        words = [[w for w in re.findall(r"[a-z']+", s.lower()) if w not in STOPWORDS] for s in parts]
        vocabulary = sorted({w for ws in words for w in ws})
        index = {w: i for i, w in enumerate(vocabulary)}
        counts = self.np.zeros((len(parts), len(vocabulary)))
        for row, ws in enumerate(words):
            for w in ws:
                counts[row, index[w]] += 1
        frequency = counts.sum(axis=0) / max(counts.sum(), 1)
        scores = (counts @ frequency) / self.np.maximum(counts.sum(axis=1), 1)
        best = sorted(self.np.argsort(-scores, kind="stable")[:keep])
        return " ".join(parts[i] for i in best)

    @ocibuild.api
    def stats(self, text: str) -> dict[str, int]:
        """Count the sentences and words of `text`."""
        return {"sentences": len(re.findall(r"[.!?](\s|$)", text)), "words": len(text.split())}
