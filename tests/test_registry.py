"""The plugin registry: third-party registration, duplicates, unknown names, entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from ganbench.errors import DuplicateNameError, GanbenchError, UnknownNameError
from ganbench.plugins import get_plugin_manager, load_registries
from ganbench.plugins.hookspecs import hookimpl
from ganbench.plugins.interfaces import Architecture, ImageShape


class _TinyArchitecture(Architecture):
    name = "tiny"
    summary = "a throwaway architecture"
    config_class = dict

    def supported_resolutions(self):
        return (8,)

    def build(self, config, shape: ImageShape):
        raise NotImplementedError


class _TinyPlugin:
    @hookimpl
    def ganbench_register_architectures(self, registry):
        registry.add(_TinyArchitecture())


class _DcganImpostor:
    @hookimpl
    def ganbench_register_architectures(self, registry):
        arch = _TinyArchitecture()
        arch.name = "dcgan"
        registry.add(arch)


def test_builtin_plugins_come_through_entry_points():
    registries = load_registries()
    assert "dcgan" in registries.architectures
    assert "digits" in registries.datasets
    sources = {p.name: p.source for p in registries.plugins}
    assert sources["dcgan"].startswith("entry point ganbench_plugins.dcgan from ganbench")
    assert registries.architectures.plugin_of("dcgan") == "dcgan"


def test_throwaway_plugin_adds_an_architecture():
    pm = get_plugin_manager(extra=[("tiny-plugin", _TinyPlugin())])
    registries = load_registries(pm)
    assert isinstance(registries.architectures.get("tiny"), _TinyArchitecture)
    assert registries.architectures.plugin_of("tiny") == "tiny-plugin"
    info = {p.name: p for p in registries.plugins}["tiny-plugin"]
    assert info.registers == {"architectures": ["tiny"]}


def test_duplicate_name_names_both_plugins():
    pm = get_plugin_manager(extra=[("impostor", _DcganImpostor())])
    with pytest.raises(DuplicateNameError) as err:
        load_registries(pm)
    message = str(err.value)
    assert "'dcgan'" in message and "plugin 'dcgan'" in message and "plugin 'impostor'" in message
    assert "GANBENCH_DISABLE_PLUGINS=impostor" in message


def test_unknown_name_lists_what_is_available():
    registries = load_registries()
    with pytest.raises(UnknownNameError) as err:
        registries.architectures.get("dcgn")
    message = str(err.value)
    assert "unknown architecture 'dcgn'" in message
    assert "Did you mean dcgan?" in message
    assert "Available: dcgan" in message
    assert err.value.exit_code == 2


def test_registering_a_wrong_type_is_refused():
    class Broken:
        @hookimpl
        def ganbench_register_datasets(self, registry):
            registry.add(_TinyArchitecture())

    with pytest.raises(TypeError, match=r"plugin 'broken' registered .* not a ganbench"):
        load_registries(get_plugin_manager(extra=[("broken", Broken())]))


def test_hook_without_spec_is_rejected():
    class Misspelt:
        @hookimpl
        def ganbench_register_architecture(self, registry):  # no such hook
            pass

    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError):
        get_plugin_manager(extra=[("misspelt", Misspelt())])


@pytest.fixture
def installed_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A real distribution on sys.path with a ``ganbench`` entry point, as pip would make."""

    def install(module_source: str) -> None:
        (tmp_path / "thirdparty_gan.py").write_text(textwrap.dedent(module_source))
        info = tmp_path / "thirdparty_gan-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: thirdparty-gan\nVersion: 1.2.3\n"
        )
        (info / "entry_points.txt").write_text("[ganbench]\nthirdparty = thirdparty_gan\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop("thirdparty_gan", None)

    return install


def test_third_party_package_registers_through_its_entry_point(installed_dist):
    installed_dist(
        """
        from ganbench.plugins.hookspecs import hookimpl
        from ganbench.plugins.interfaces import Architecture

        class Wgan(Architecture):
            name = "wgan"
            summary = "third-party"
            config_class = dict
            def supported_resolutions(self): return (32,)
            def build(self, config, shape): raise NotImplementedError

        @hookimpl
        def ganbench_register_architectures(registry):
            registry.add(Wgan())
        """
    )
    registries = load_registries()
    assert registries.architectures.plugin_of("wgan") == "thirdparty"
    assert {"dcgan", "wgan"} <= set(registries.architectures.names())
    info = {p.name: p for p in registries.plugins}["thirdparty"]
    assert "thirdparty-gan 1.2.3" in info.source


def test_broken_third_party_plugin_is_named_and_can_be_blocked(installed_dist, monkeypatch):
    installed_dist("raise ImportError('missing dependency frobnicate')\n")
    with pytest.raises(GanbenchError, match=r"plugin 'thirdparty' .*thirdparty-gan 1\.2\.3.*frob"):
        load_registries()
    monkeypatch.setenv("GANBENCH_DISABLE_PLUGINS", "thirdparty")
    assert "dcgan" in load_registries().architectures
