"""An extractive summarizer: keeps the sentences whose words are most informative.

A word's weight is its surprise against a background word-frequency table, the model this service
ships: import it once with `ocibuild models import model --name summarization-weights`.
numpy is imported when the service starts, not at module level, so that `ocibuild build` can
import this file on a machine without the service's dependencies.
"""

import json
import math
import os
import re

import ocibuild

image = ocibuild.images.PythonImage(python_version="3.11").python_packages("numpy>=1.26")


@ocibuild.service(
    image=image,
    envs=[{"name": "SUMMARY_API_KEY"}, {"name": "SUMMARY_SENTENCES", "value": "2"}],
)
class Summarization:
    weights = ocibuild.models.Model("summarization-weights:latest")

    def __init__(self) -> None:
        import numpy

        self.np = numpy
        self.default_sentences = int(os.environ.get("SUMMARY_SENTENCES", "2"))
        table = json.loads((self.weights.path / "word_frequencies.json").read_text())
        self.background = table["frequencies"]
        self.floor = table["floor"]

    def weight(self, word: str) -> float:
        """Surprise in bits: rare words carry more information than common ones."""
        return math.log2(1e6 / max(self.background.get(word, self.floor), self.floor))

    @ocibuild.api
    def summarize(self, text: str, sentences: int | None = None) -> str:
        """Return the most informative sentences of `text`, in their original order."""
        parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
        keep = sentences or self.default_sentences
        if len(parts) <= keep:
            return " ".join(parts)
        words = [re.findall(r"[a-z']+", s.lower()) for s in parts]
        vocabulary = sorted({w for ws in words for w in ws})
        index = {w: i for i, w in enumerate(vocabulary)}
        counts = self.np.zeros((len(parts), len(vocabulary)))
        for row, ws in enumerate(words):
            for w in ws:
                counts[row, index[w]] += 1
        # a word matters when it is rare in general and recurs in this text
        relevance = counts.sum(axis=0) * self.np.array([self.weight(w) for w in vocabulary])
        scores = (counts @ relevance) / self.np.maximum(counts.sum(axis=1), 1)
        best = sorted(self.np.argsort(-scores, kind="stable")[:keep])
        return " ".join(parts[i] for i in best)

    @ocibuild.api
    def stats(self, text: str) -> dict[str, int]:
        """Count the sentences and words of `text`."""
        return {"sentences": len(re.findall(r"[.!?](\s|$)", text)), "words": len(text.split())}
