"""ModelKey: the one place a vector key is built from an encoder and a version, or split."""

import pytest

from clapdesk.core.store.model_key import ModelKey


def test_a_version_key_splits_back_into_its_parts() -> None:
    key = ModelKey.of("larger_clap_music@0123456789abcdef", "my-kicks")
    assert key == "larger_clap_music@0123456789abcdef+my-kicks"  # as stored in the catalog
    assert (key.encoder, key.version) == ("larger_clap_music@0123456789abcdef", "my-kicks")


def test_the_base_model_key_is_the_encoder_key_alone() -> None:
    key = ModelKey.of("clap@abc", None)
    assert key == "clap@abc" and key.encoder == "clap@abc" and key.version is None
    assert ModelKey("clap@abc").version is None  # a key read back from the catalog


def test_a_version_name_with_the_separator_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot contain"):
        ModelKey.of("clap@abc", "a+b")
