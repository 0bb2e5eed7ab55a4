"""Reading a Debian archive: signed `InRelease`, verified `Packages`, verified `.deb`s.

Trust chain: `InRelease`'s signature is checked with `gpgv` against the Debian archive keyring
(required when `OCIBUILD_DEBIAN_REQUIRE_SIGNATURE=1`, else checked whenever gpgv and the keyring
are present, with a warning when they are not); as apt does, a signed release must be the one
asked for (its `Codename` or `Suite`) and not past its `Valid-Until`, or a mirror could serve
another suite or replay an old one; and, as apt keeps its newest lists, a release older than one
already read from that mirror is passed over for the newer (Debian's stable suites carry no
`Valid-Until`, so only this stops a mirror replaying a release whose packages have known holes).
`Packages` is fetched by its hash where the release offers it (`Acquire-By-Hash`: no race with a
mirror updating, and a kept release's index stays reachable), and must match the SHA256 and
size `Release` lists;
every `.deb` must match the SHA256 `Packages` lists, when downloaded and again whenever it is
read from the cache. No answer is read past the size it may have (`Release`'s for `Packages`).

The mirror is the one apt uses on this machine (its sources), unless `OCIBUILD_DEBIAN_MIRROR` or
`mirror:` in `$OCIBUILD_HOME/debian.yaml` names another (a snapshot archive URL pins time).
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import shutil
import subprocess
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from ocibuild.debian.index import DebPackage, LazyPackageIndex
from ocibuild.debian.settings import DebianSettings
from ocibuild.errors import DebianError
from ocibuild.progress import task
from ocibuild.store.atomic import TempFile, directory_lock, write_atomic

log = logging.getLogger(__name__)

CHUNK = 1 << 20
MAX_RELEASE = 16 << 20  # Debian's InRelease is about 150 KB
MAX_INDEX = 256 << 20  # bookworm's main/binary-amd64/Packages.xz is about 9 MB


def sha256_file(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


class DebianArchive:
    def __init__(self, settings: DebianSettings, suite: str, architecture: str, cache: Path):
        self.settings = settings
        self.suite = suite
        self.architecture = architecture
        self.cache = cache
        self._local = threading.local()  # downloads run in threads: one connection pool each
        self._release = None  # debian.deb822.Release, once read
        self._keep: tuple[Path, bytes, datetime] | None = None  # the release to keep as the newest, once its index is here

    @property
    def session(self):
        """A `requests.Session` per thread (requests is imported only when the archive is read)."""
        import requests

        if not hasattr(self._local, "session"):
            self._local.session = requests.Session()
        return self._local.session

    def _get(self, url: str, limit: int, missing_ok: bool = False) -> bytes | None:
        """The answer's body, of at most `limit` bytes (one byte more is read to tell a longer one);
        None for a 404 when `missing_ok`."""
        import requests

        try:
            with self.session.get(url, timeout=(10, 120), stream=True) as response:
                if response.status_code == 404 and missing_ok:
                    return None
                if response.status_code != 200:
                    raise DebianError(f"the Debian mirror answered HTTP {response.status_code} for {url}")
                data = response.raw.read(limit + 1, decode_content=True)
        except (requests.RequestException, OSError) as exc:
            raise DebianError(f"cannot reach the Debian mirror: {type(exc).__name__} for {url}") from None
        return data

    def release(self):
        from debian.deb822 import Release

        url = f"{self.settings.mirror}/dists/{self.suite}/InRelease"
        data = self._get(url, MAX_RELEASE)
        if len(data) > MAX_RELEASE:
            raise DebianError(f"{url} is larger than {MAX_RELEASE} bytes: refusing it")
        text, verified = self._verified_release(data)
        release, now = Release(text), datetime.now(UTC) if self.settings.check_valid_until else None
        check_release(release, self.suite, now)
        served = release_date(release, self.suite)
        path = self.cache / "releases" / (hashlib.sha256(f"{self.settings.mirror}\n{self.suite}".encode())
                                          .hexdigest()[:32] + ".Release")
        kept = _kept_release(path, self.suite)
        if kept is not None and served is not None and kept[1] > served:
            log.warning("the Debian mirror serves %s's release of %s, older than the one of %s read from it "
                        "before: keeping the newer one", self.suite, release.get("Date"), kept[0].get("Date"))
            check_release(kept[0], self.suite, now)
            return kept[0]
        # kept only once its signature was checked (an unsigned release dated far ahead would
        # otherwise stand in for every genuine one after it), and only once its index is in the
        # cache (`index`), as apt keeps a release with its lists: a glimpse of a newer release
        # whose index never came would otherwise pin this cache to an index it cannot get
        if verified and served is not None and (kept is None or kept[1] < served):
            self._keep = (path, text, served)
        return release

    def _kept_with_index(self) -> None:
        """Keep the release read as the newest, unless another build kept a newer one since it
        was read: the comparison is made again, and the write done, under the directory's lock
        (staged elsewhere, as the staging takes its own directory's lock)."""
        if self._keep is not None:
            path, text, served = self._keep
            path.parent.mkdir(parents=True, exist_ok=True)
            with directory_lock(path.parent):
                kept = _kept_release(path, self.suite)
                if kept is None or kept[1] < served:
                    write_atomic(path, text, 0o644, staging=self.cache / "staging")
            self._keep = None

    def _verified_release(self, signed: bytes) -> tuple[bytes, bool]:
        """The release's text, and whether its signature was checked."""
        gpgv = shutil.which("gpgv")
        if not gpgv or not self.settings.keyring.is_file():
            if self.settings.require_signature:
                raise DebianError(f"cannot check the signature of {self.suite}'s InRelease: gpgv or "
                                  f"{self.settings.keyring} is missing")
            log.warning("the signature of %s's InRelease is not checked (gpgv or %s is missing); "
                        "OCIBUILD_DEBIAN_REQUIRE_SIGNATURE=1 refuses instead", self.suite, self.settings.keyring)
            return _strip_signature(signed), False
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "InRelease").write_bytes(signed)
            out = subprocess.run([gpgv, "--quiet", "--keyring", str(self.settings.keyring), "--output",
                                  str(Path(tmp) / "Release"), str(Path(tmp) / "InRelease")],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                raise DebianError(f"{self.suite}'s InRelease does not carry a valid signature from the Debian "
                                  f"archive keyring ({self.settings.keyring})")
            return (Path(tmp) / "Release").read_bytes(), True

    def _entry(self, component: str) -> dict:
        wanted = f"{component}/binary-{self.architecture}/Packages.xz"
        if self._release is None:
            self._release = self.release()
        entry = next((e for e in self._release.get("SHA256", []) if e["name"] == wanted), None)
        if entry is None:
            raise DebianError(f"{self.suite}'s Release lists no {wanted}")
        if not str(entry["size"]).isdigit() or int(entry["size"]) > MAX_INDEX:
            raise DebianError(f"{self.suite}'s Release gives {wanted} a size of {str(entry['size'])[:20]!r} bytes: "
                              f"refusing it (at most {MAX_INDEX})")
        return entry

    def index_digest(self, component: str = "main") -> str:
        """The SHA256 the signed Release gives for the Packages index: names its content."""
        return self._entry(component)["sha256"]

    def index(self, component: str = "main") -> LazyPackageIndex:
        """The verified index, parsed lazily (only the paragraphs a resolution reads). Its text and
        the scan of where each package is are kept in the cache, named by the digest Release gives."""
        entry = self._entry(component)
        wanted = entry["name"]
        text_path = self.cache / "indexes" / f"{entry['sha256']}.packages"
        spans_path = self.cache / "indexes" / f"{entry['sha256']}.spans-1.json"
        if text_path.is_file() and spans_path.is_file():
            self._kept_with_index()
            return LazyPackageIndex(text_path.read_bytes(), self.architecture, json.loads(spans_path.read_text()))
        size, base = int(entry["size"]), f"{self.settings.mirror}/dists/{self.suite}"
        data = None
        if str(self._release.get("Acquire-By-Hash", "")).lower() == "yes":
            data = self._get(f"{base}/{wanted.rsplit('/', 1)[0]}/by-hash/SHA256/{entry['sha256']}", size, missing_ok=True)
        if data is None:
            data = self._get(f"{base}/{wanted}", size)
        check_index(data, entry["sha256"], size, wanted)
        text = lzma.decompress(data)
        del data
        index = LazyPackageIndex(text, self.architecture)
        text_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(text_path, text, 0o644)
        write_atomic(spans_path, json.dumps(index.spans()).encode(), 0o644)
        self._kept_with_index()
        return index

    def deb(self, package: DebPackage) -> Path:
        """The verified `.deb`, downloaded into the cache once. Safe to call from several threads."""
        import requests

        path = self.cache / "debs" / f"{package.sha256}.deb"
        if path.is_file():
            if sha256_file(path) != package.sha256:
                raise DebianError(f"the cached {package.name}_{package.version}.deb ({path}) does not match its "
                                  "SHA256 in Packages: refusing it (delete it to download it again)")
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"{self.settings.mirror}/{package.filename}"
        try:
            response = self.session.get(url, stream=True, timeout=(10, 120))
        except requests.RequestException as exc:
            raise DebianError(f"cannot download {package.name}: {type(exc).__name__}") from None
        if response.status_code == 404:
            raise DebianError(f"the mirror no longer has {package.name} {package.version}: point "
                              "OCIBUILD_DEBIAN_MIRROR at a snapshot archive from when the bento was built")
        if response.status_code != 200:
            raise DebianError(f"the Debian mirror answered HTTP {response.status_code} for {url}")
        sha, received = hashlib.sha256(), 0
        with TempFile(path.parent, mode=0o644) as tmp, task(f"{package.name}.deb", package.size) as progress:
            for chunk in response.iter_content(CHUNK):
                received += len(chunk)
                if received > package.size:  # an endless answer is cut here, not at the end of the disk
                    raise DebianError(f"{package.name}_{package.version}.deb from the mirror is larger than the "
                                      f"{package.size} bytes Packages declares")
                sha.update(chunk)
                tmp.file.write(chunk)
                progress.advance(len(chunk))
            if sha.hexdigest() != package.sha256:
                raise DebianError(f"{package.name}_{package.version}.deb from the mirror does not match its SHA256 in Packages")
            tmp.commit(path)
        return path


def check_index(data: bytes, sha256: str, size: int, name: str) -> None:
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha256:
        raise DebianError(f"{name} does not match the SHA256 and size in Release: refusing it")


def check_release(release, suite: str, now: datetime | None) -> None:
    """A signed release is only good for the suite it names, and until its `Valid-Until` (not
    checked with `now` None: a snapshot archive serves releases past it, as it should)."""
    named = [release.get("Codename"), release.get("Suite")]
    if suite not in named:
        raise DebianError(f"the mirror's InRelease for {suite} is that of {named[0] or named[1] or 'no suite'}: "
                          "refusing it")
    until = release.get("Valid-Until")
    if until and now is not None:
        from email.utils import parsedate_to_datetime  # 8 ms of imports: not on the edit path, which reads no release

        try:
            expiry = parsedate_to_datetime(until)
        except (TypeError, ValueError):
            raise DebianError(f"{suite}'s InRelease has an unreadable Valid-Until {until[:40]!r}") from None
        if expiry.tzinfo is None:  # "-0000": UTC, with no claim about the local zone (RFC 5322)
            expiry = expiry.replace(tzinfo=UTC)
        if expiry < now:
            raise DebianError(f"{suite}'s InRelease expired on {until}: the mirror serves an old release "
                              "(a snapshot archive? set OCIBUILD_DEBIAN_CHECK_VALID_UNTIL=0)")


def release_date(release, suite: str) -> datetime | None:
    """A release's `Date` (None: it has none), to tell the newer of two."""
    date = release.get("Date")
    if not date:
        return None
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        raise DebianError(f"{suite}'s InRelease has an unreadable Date {date[:40]!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _kept_release(path: Path, suite: str):
    """(release, date): the newest release of `suite` this cache has verified, unless unreadable."""
    from debian.deb822 import Release

    try:
        kept = Release(path.read_bytes())
        date = release_date(kept, suite)
    except (OSError, DebianError, ValueError):
        return None
    return (kept, date) if date is not None and suite in (kept.get("Codename"), kept.get("Suite")) else None


def _strip_signature(signed: bytes) -> bytes:
    """The signed text of an InRelease whose signature cannot be checked."""
    text = signed.decode(errors="replace")
    if "-----BEGIN PGP SIGNED MESSAGE-----" not in text:
        return signed
    _, blank, body = text.partition("\n\n")
    if not blank:
        raise DebianError("the mirror's InRelease is not a readable signed message")
    return body.split("-----BEGIN PGP SIGNATURE-----")[0].encode()
