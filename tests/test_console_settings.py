"""``console.toml``: defaults for everything, and every mistake named in one line."""

from __future__ import annotations

import pytest

from console.settings import Settings, SettingsError, load_settings, parse_settings


def test_no_file_means_the_defaults(tmp_path):
    settings = load_settings(tmp_path / "console.toml")
    assert settings == Settings()
    assert settings.border_agency == "immigration" and "fiu" in settings.agencies
    assert settings.shared_with("anything") == frozenset({"immigration"})


def test_a_file_sets_agencies_lists_and_thresholds(tmp_path):
    path = tmp_path / "console.toml"
    path.write_text(
        'border_agency = "migration"\n'
        "[agencies]\nmigration = 'Migration Service'\npolice = 'Police'\n"
        "[lists]\nnational-wanted = ['migration', 'police']\n"
        "[alerts]\noffline_minutes = 3\n"
        "[session]\nidle_minutes = 5\n"
    )
    settings = load_settings(path)
    assert settings.agencies == {"migration": "Migration Service", "police": "Police"}
    assert settings.shared_with("national-wanted") == frozenset({"migration", "police"})
    assert settings.alerts.offline_minutes == 3 and settings.alerts.disk_free_percent == 10
    assert settings.session.idle_minutes == 5 and settings.session.absolute_hours == 12


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("colour = 'blue'", "unknown key 'colour'"),
        ("[alerts]\noffline_minute = 3", "alerts: unknown key 'offline_minute'"),
        ("[alerts]\noffline_minutes = 0", "alerts.offline_minutes: a whole number from 1"),
        ("[alerts]\noffline_minutes = true", "alerts.offline_minutes: a whole number"),
        ("[session]\nidle_minutes = '30'", "session.idle_minutes: a whole number"),
        ("border_agency = 'customs'", "border_agency 'customs' is not one of the agencies"),
        ("[lists]\nwanted = ['interpol']", "lists.wanted: a list of agency ids"),
        ("[agencies]\nPolice = 'x'", "agencies.Police: an id"),
        ("[agencies", "not TOML"),
    ],
)
def test_a_mistake_is_one_line_naming_the_key(tmp_path, text, problem):
    path = tmp_path / "console.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_parse_settings_checks_data_that_came_from_elsewhere():
    with pytest.raises(SettingsError, match="lockout: expected a table"):
        parse_settings({"lockout": 5})
