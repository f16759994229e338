"""The `mibzoo` command line."""
import subprocess
import sys

import mibzoo
from mibzoo.cli import main


def test_list_prints_every_entry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in mibzoo.list_models():
        assert name in out
    assert "[beta_i, G_cross^str(x_i)]" in out and "str_reg=[beta - 1, tc]" in out


def test_python_dash_m_mibzoo_list():
    result = subprocess.run([sys.executable, "-m", "mibzoo", "list"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "wyner_vae" in result.stdout
