"""`mibzoo.run_records`: the machine a number was measured on."""
from mibzoo import run_records


def _cpuinfo(tmp_path, flags):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: {flags}\n\n"
                    f"processor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\nflags\t\t: {flags}\n")
    return path


def test_cpu_flags_are_read_from_the_first_processor(tmp_path):
    assert run_records.cpu_flags(_cpuinfo(tmp_path, "fpu sse2 avx512_bf16")) == {"fpu", "sse2", "avx512_bf16"}
    assert run_records.cpu_flags(tmp_path / "absent") == set()


def test_the_machine_names_its_bfloat16_matrix_units(tmp_path):
    """Two machines of one CPU model name can differ in AMX, and a bfloat16 step's time with it: the
    description tells them apart."""
    with_amx = run_records.machine(_cpuinfo(tmp_path, "avx512f amx_tile amx_bf16 avx512_bf16"))
    assert with_amx.startswith("Intel(R) Xeon(R) Processor with AMX and AVX512-BF16, ")
    without = run_records.machine(_cpuinfo(tmp_path, "avx2 avx512f fma"))
    assert without.startswith("Intel(R) Xeon(R) Processor, ") and " cores" in without
    assert run_records.bfloat16_units({"avx512_bf16"}) == ["AVX512-BF16"]
