"""Episodes stored in Diffusion Policy's zarr layout, held in RAM.

On disk a store is a zarr group (format v2 directory store)::

    <store>/data/<key>          arrays concatenated over time, first axis = time, all the same length
    <store>/meta/episode_ends   int, cumulative end index of each episode (exclusive)

This is exactly the layout that real-stanford/diffusion_policy writes, so its stores load unchanged.
Training reads arrays from RAM, because random small zarr reads are slow.
Only zarr calls that exist in both zarr 2.18 and zarr 3 are used (``open_group``, ``zeros``,
``attrs``, slicing); zarr 3 itself is untested here.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import zarr

from ..utils.io import remove_stale_temps, temp_prefix

__all__ = ["DatasetError", "ReplayBuffer"]

# Blosc lz4 without shuffle is what Diffusion Policy writes: fast to decode, and it keeps stores
# readable by DP itself and by any zarr 2/3 reader without extra codec packages.
_COMPRESSOR = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.NOSHUFFLE)
_ZARR_MAJOR = int(zarr.__version__.split(".")[0])


class DatasetError(ValueError):
    """An invalid store or input; the message names the field, what was expected and what came."""


def _describe(x: Any) -> str:
    """Short description of a value for error messages (no giant array dumps)."""
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"[:200]


def _check_episode_ends(episode_ends: Any, field: str = "episode_ends") -> np.ndarray:
    """Validate cumulative episode ends and return them as int64 (n_episodes,)."""
    ends = np.asarray(episode_ends)
    if ends.ndim != 1:
        raise DatasetError(f"{field}: expected a 1-D integer array, got {_describe(ends)}")
    if ends.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(ends.dtype, np.integer):
        raise DatasetError(f"{field}: expected an integer dtype, got dtype {ends.dtype}")
    ends = ends.astype(np.int64)
    if ends[0] <= 0:
        raise DatasetError(f"{field}: expected the first end > 0 (episodes have >= 1 step), got {ends[0]}")
    steps = np.diff(ends)
    if np.any(steps <= 0):
        bad = int(np.argmax(steps <= 0)) + 1
        raise DatasetError(
            f"{field}: expected strictly increasing values, got {ends[bad - 1]} then {ends[bad]} "
            f"at positions {bad - 1} and {bad}"
        )
    return ends


def _check_key(key: Any, field: str) -> str:
    """Keys become zarr array names, so they must be plain non-empty names without '/'."""
    if not isinstance(key, str) or not key or "/" in key:
        raise DatasetError(f"{field}: expected a non-empty string without '/', got {_describe(key)}")
    return key


def _check_attrs(attrs: Any) -> dict:
    """attrs go to the store's .zattrs, which is JSON."""
    if attrs is None:
        return {}
    if not isinstance(attrs, Mapping):
        raise DatasetError(f"attrs: expected a JSON-serialisable dict, got {_describe(attrs)}")
    try:
        json.dumps(dict(attrs))
    except (TypeError, ValueError) as e:
        raise DatasetError(f"attrs: expected a JSON-serialisable dict, got one that fails to serialise ({e})") from e
    return dict(attrs)


def _write_array(group: Any, name: str, data: np.ndarray, chunks: tuple[int, ...], compressor: Any) -> None:
    """Create one format-v2 array in `group` and fill it (a single seam, also used by tests to inject failures)."""
    arr = group.zeros(name=name, shape=data.shape, chunks=chunks, dtype=data.dtype, compressor=compressor)
    arr[...] = data


# Codecs whose decoding runs code stored in the file; numcodecs' object codecs (vlen-*, json2, msgpack2)
# only ever hold object arrays, which are refused by dtype.
_UNSAFE_CODECS = {"pickle"}


def _check_safe(store: Any, key: str, path: Path) -> None:
    """Refuse, from its raw ``.zarray`` JSON, an array whose decoding could run code: object dtypes (also
    inside a structured dtype, whose fill value zarr unpickles on opening) and the pickle codec. A store is
    data; it never gets to execute anything."""
    try:
        meta = json.loads(store[f"{key}/.zarray"])
    except KeyError:
        raise DatasetError(f"{key}: expected an array in the store {str(path)!r}, got no .zarray") from None
    except (ValueError, TypeError) as err:
        raise DatasetError(f"{key}: expected JSON array metadata in the store {str(path)!r}, got ({err})") from None
    if _has_object(meta.get("dtype")):
        raise DatasetError(f"{key}: expected a numeric dtype in the store {str(path)!r}, got {meta.get('dtype')} "
                           "(object arrays are never decoded)")
    codecs = [meta.get("compressor"), *(meta.get("filters") or [])]
    unsafe = sorted({c.get("id") for c in codecs if isinstance(c, dict)} & _UNSAFE_CODECS)
    if unsafe:
        raise DatasetError(f"{key}: expected numeric codecs in the store {str(path)!r}, got {unsafe} "
                           "(decoding it could run code from the file)")


def _has_object(dtype: Any) -> bool:
    """Whether a zarr v2 dtype description (a typestr, or a list of structured fields) holds objects."""
    if isinstance(dtype, str):
        return "O" in dtype  # numpy typestrs: only the object kind is spelled with an O
    if isinstance(dtype, list):  # fields [name, dtype] or [name, dtype, shape]: the names may say anything
        return any(not isinstance(f, list) or len(f) < 2 or _has_object(f[1]) for f in dtype)
    return True  # not a dtype zarr v2 writes: refused as unknown


def _open_group_v2(path: Path, mode: str) -> Any:
    if _ZARR_MAJOR >= 3:  # pragma: no cover - zarr 3 is not installed here
        return zarr.open_group(str(path), mode=mode, zarr_format=2)
    return zarr.open_group(str(path), mode=mode)


def _is_zarr_group_dir(path: Path) -> bool:
    return path.is_dir() and ((path / ".zgroup").is_file() or (path / "zarr.json").is_file())


def read_store_meta(path: str | os.PathLike) -> tuple[dict, int]:
    """A store's root attributes and number of episodes, from metadata only (no array is decoded)."""
    try:
        root = zarr.open(str(path), mode="r")
        _check_safe(root.store, "meta/episode_ends", Path(path))
        return dict(root.attrs), int(root["meta"]["episode_ends"].shape[0])
    except DatasetError:
        raise
    except Exception as err:  # zarr raises several error types for "not a store"
        raise DatasetError(f"path: expected a zarr store with meta/episode_ends at {str(path)!r} ({err})") from err


class ReplayBuffer:
    """In-RAM episodes in Diffusion Policy's layout (random small zarr reads are slow: load training arrays into RAM).

    `data[key]` is (n_steps, *feature_shape); episode i covers rows `episode_slice(i)`.
    Arrays passed to the constructor are used without copying; `add_episode` grows private
    arrays geometrically, so collecting many episodes costs O(total steps), not O(n^2).
    """

    def __init__(
        self,
        data: dict[str, np.ndarray] | None = None,
        episode_ends: np.ndarray | None = None,
        attrs: dict | None = None,
    ) -> None:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise DatasetError(f"data: expected a dict of key -> numpy array, got {_describe(data)}")
        if episode_ends is None:
            if any(len(np.shape(v)) > 0 and np.shape(v)[0] > 0 for v in data.values()):
                raise DatasetError("episode_ends: expected an array of episode ends when data has steps, got None")
            episode_ends = np.zeros(0, dtype=np.int64)
        ends = _check_episode_ends(episode_ends)
        n_steps = int(ends[-1]) if ends.size else 0
        if ends.size and not data:
            raise DatasetError(f"data: expected at least one key for {ends.size} episodes, got an empty dict")

        arrays: dict[str, np.ndarray] = {}
        for key, value in data.items():
            _check_key(key, "data key")
            if not isinstance(value, np.ndarray):
                raise DatasetError(f"data[{key!r}]: expected a numpy array, got {_describe(value)}")
            if value.ndim < 1:
                raise DatasetError(f"data[{key!r}]: expected an array with a time axis (ndim >= 1), got a 0-d array")
            if value.dtype == object:
                raise DatasetError(f"data[{key!r}]: expected a numeric dtype, got dtype object")
            if value.shape[0] != n_steps:
                raise DatasetError(
                    f"data[{key!r}]: expected length {n_steps} (the last episode end), got length {value.shape[0]}"
                )
            arrays[key] = value
        self._arrays = arrays  # key -> (capacity, *feature_shape); rows >= n_steps are unused slack
        self._ends = ends
        self._attrs = _check_attrs(attrs)

    # ------------------------------------------------------------------ properties
    @property
    def keys(self) -> list[str]:
        return list(self._arrays)

    @property
    def n_episodes(self) -> int:
        return int(self._ends.size)

    @property
    def n_steps(self) -> int:
        return int(self._ends[-1]) if self._ends.size else 0

    @property
    def episode_ends(self) -> np.ndarray:
        """(n_episodes,) int64, cumulative exclusive end of each episode (a copy)."""
        return self._ends.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        """(n_episodes,) int64."""
        return np.diff(self._ends, prepend=0)

    @property
    def attrs(self) -> dict:
        """Free-form JSON metadata saved in the store root's .zattrs (mutable; checked again on save)."""
        return self._attrs

    @property
    def data(self) -> dict[str, np.ndarray]:
        """key -> (n_steps, *feature_shape); views into the buffer, not copies."""
        n = self.n_steps
        return {k: a[:n] for k, a in self._arrays.items()}

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}: {a.shape[1:]} {a.dtype}" for k, a in self._arrays.items())
        return f"ReplayBuffer(n_episodes={self.n_episodes}, n_steps={self.n_steps}, keys={{{shapes}}})"

    def images_to_uint8(self, keys: Sequence[str]) -> None:
        """Camera ``keys`` stored as floats of 0..255 (Diffusion Policy's Push-T store keeps ``img`` so)
        become uint8 in memory, the dtype every image path expects (the store on disk is unchanged).
        Anything else in an image key is refused: a fixed 0..255 scale would misread it."""
        for key in keys:
            values = self._arrays[key][: self.n_steps]
            if values.dtype == np.uint8 or not values.size:
                continue
            lo, hi = float(values.min()), float(values.max())
            if not (np.isfinite(lo) and np.isfinite(hi) and 0.0 <= lo and hi <= 255.0):
                raise DatasetError(f"data/{key}: expected image pixels in 0..255 (uint8, or floats of that range), "
                                   f"got {values.dtype} values in [{lo}, {hi}]")
            if hi <= 1.0:
                raise DatasetError(f"data/{key}: expected image pixels in 0..255, got {values.dtype} values in "
                                   f"[{lo}, {hi}], which look scaled to [0, 1]; store them as 0..255")
            self._arrays[key] = np.rint(values).astype(np.uint8)

    # ------------------------------------------------------------------ episodes
    def _check_index(self, i: Any) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"episode index: expected an int, got {_describe(i)}")
        n = self.n_episodes
        if not -n <= i < n:
            raise IndexError(f"episode index: expected -{n} <= i < {n} (n_episodes), got {i}")
        return int(i) % n

    def episode_slice(self, i: int) -> slice:
        """Rows of episode i in every `data` array."""
        i = self._check_index(i)
        start = int(self._ends[i - 1]) if i > 0 else 0
        return slice(start, int(self._ends[i]))

    def get_episode(self, i: int) -> dict[str, np.ndarray]:
        """key -> (T_i, *feature_shape) views of episode i (no copy)."""
        s = self.episode_slice(i)
        return {k: a[s] for k, a in self._arrays.items()}

    def add_episode(self, episode: dict[str, np.ndarray]) -> None:
        """Append one episode; every value is (T, ...) with the same T >= 1 and matches existing keys/shapes/dtypes."""
        if not isinstance(episode, Mapping) or not episode:
            raise DatasetError(f"episode: expected a non-empty dict of key -> (T, ...) array, got {_describe(episode)}")
        values = {}
        for key, value in episode.items():
            _check_key(key, "episode key")
            value = np.asarray(value)
            if value.ndim < 1 or value.dtype == object:
                raise DatasetError(f"episode[{key!r}]: expected a numeric (T, ...) array, got {_describe(value)}")
            values[key] = value
        lengths = {k: v.shape[0] for k, v in values.items()}
        T = next(iter(lengths.values()))
        if T < 1 or any(t != T for t in lengths.values()):
            raise DatasetError(f"episode: expected every value to have the same length T >= 1, got lengths {lengths}")

        if self._arrays:
            missing = sorted(set(self._arrays) - set(values))
            extra = sorted(set(values) - set(self._arrays))
            if missing or extra:
                raise DatasetError(
                    f"episode keys: expected exactly {sorted(self._arrays)}, got {sorted(values)} "
                    f"(missing {missing}, unexpected {extra})"
                )
            for key, value in values.items():
                ref = self._arrays[key]
                if value.shape[1:] != ref.shape[1:] or value.dtype != ref.dtype:
                    raise DatasetError(
                        f"episode[{key!r}]: expected per-step shape {ref.shape[1:]} and dtype {ref.dtype} "
                        f"(as in the buffer; cast first), got shape {value.shape[1:]} and dtype {value.dtype}"
                    )

        n = self.n_steps
        for key, value in values.items():
            arr = self._arrays.get(key)
            if arr is None or arr.shape[0] < n + T:
                capacity = max(n + T, 2 * (arr.shape[0] if arr is not None else 0))
                grown = np.empty((capacity, *value.shape[1:]), dtype=value.dtype)
                if arr is not None:
                    grown[:n] = arr[:n]
                arr = grown
            arr[n : n + T] = value
            self._arrays[key] = arr
        self._ends = np.append(self._ends, np.int64(n + T))

    # ------------------------------------------------------------------ disk
    @classmethod
    def open(cls, path: str | os.PathLike, keys: Sequence[str] | None = None) -> ReplayBuffer:
        """Load the listed `data/` keys (default: all) of a DP-layout zarr store into numpy arrays."""
        p = Path(path)
        if not p.exists():
            raise DatasetError(f"path: expected an existing zarr store directory, got {str(p)!r}, which does not exist")
        try:
            root = zarr.open(str(p), mode="r")
        except Exception as e:  # zarr raises several error types for "not a store"
            raise DatasetError(f"path: expected a zarr store, got {str(p)!r}, which zarr cannot open ({e})") from e
        if not isinstance(root, zarr.Group):
            raise DatasetError(f"path: expected a zarr group with data/ and meta/, got a zarr array at {str(p)!r}")
        for group in ("data", "meta"):
            if group not in root or not isinstance(root[group], zarr.Group):
                raise DatasetError(f"{group}: expected a group {group}/ in the store {str(p)!r}, got none")
        if "episode_ends" not in root["meta"]:
            raise DatasetError(f"meta/episode_ends: expected an array in the store {str(p)!r}, got none")
        for key in root["data"].array_keys():  # from the raw metadata, before zarr builds (and decodes) anything
            _check_safe(root.store, f"data/{key}", p)
        _check_safe(root.store, "meta/episode_ends", p)
        ends = _check_episode_ends(root["meta"]["episode_ends"][...], field="meta/episode_ends")
        n_steps = int(ends[-1]) if ends.size else 0

        data_group = root["data"]
        available = sorted(data_group.array_keys())
        for key in available:  # checked from metadata for every key, loaded or not
            length = data_group[key].shape[0] if data_group[key].ndim else None
            if length != n_steps:
                raise DatasetError(
                    f"data/{key}: expected length {n_steps} (meta/episode_ends[-1]), got length {length}"
                )
        if keys is None:
            keys = available
        else:
            if isinstance(keys, str) or not isinstance(keys, Sequence) or not keys:
                raise DatasetError(f"keys: expected a non-empty list of key names, got {_describe(keys)}")
            missing = [k for k in keys if k not in available]
            if missing:
                raise DatasetError(f"keys: expected keys among the store's data/ keys {available}, got missing {missing}")
        data = {}
        for key in keys:
            try:
                data[key] = data_group[key][...]
            except Exception as e:  # e.g. a Jpeg2k codec that needs imagecodecs.numcodecs.register_codecs()
                raise DatasetError(f"data/{key}: expected a readable array, got an error while decoding ({e})") from e
        return cls(data, ends, attrs=dict(root.attrs))

    def save(self, path: str | os.PathLike, *, overwrite: bool = False, chunk_len: int = 1000) -> Path:
        """Write a zarr format-v2 store atomically and return its path.

        The store is written to a sibling temp dir and renamed into place, so an interruption never
        leaves a half-written store under `path`. overwrite=True moves the old store aside, renames the
        new one in, then deletes the old one; it only replaces an existing zarr group directory.
        """
        if self.n_episodes == 0:
            raise DatasetError("buffer: expected at least one episode to save, got an empty buffer")
        if isinstance(chunk_len, bool) or not isinstance(chunk_len, (int, np.integer)) or chunk_len < 1:
            raise DatasetError(f"chunk_len: expected an int >= 1, got {_describe(chunk_len)}")
        attrs = _check_attrs(self._attrs)
        final = Path(path)
        if final.exists() or final.is_symlink():
            if not overwrite:
                raise DatasetError(f"path: expected a path that does not exist (or overwrite=True), got existing {str(final)!r}")
            if not _is_zarr_group_dir(final) or final.is_symlink():
                raise DatasetError(
                    f"path: overwrite=True only replaces a zarr store directory, got {str(final)!r}, which is not one"
                )
        final.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(final)
        tag = secrets.token_hex(4)
        tmp = final.with_name(f"{temp_prefix(final)}{tag}")
        old = final.with_name(f"{temp_prefix(final, 'old')}{tag}")
        try:
            root = _open_group_v2(tmp, mode="w")
            root.attrs.update(attrs)
            data_group = root.require_group("data")
            meta_group = root.require_group("meta")
            n = self.n_steps
            for key, arr in self._arrays.items():
                arr = arr[:n]
                chunks = (min(int(chunk_len), n), *arr.shape[1:])
                _write_array(data_group, key, arr, chunks, _COMPRESSOR)
            _write_array(meta_group, "episode_ends", self._ends, (max(1, self.n_episodes),), None)

            if final.exists():
                os.rename(final, old)
                try:
                    os.rename(tmp, final)
                except BaseException:
                    os.rename(old, final)  # put the previous store back
                    raise
                shutil.rmtree(old, ignore_errors=True)
            else:
                try:
                    os.rename(tmp, final)
                except OSError as e:  # someone created `final` meanwhile; never merge into it
                    raise DatasetError(f"path: expected {str(final)!r} to stay absent while saving, got ({e})") from e
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final
