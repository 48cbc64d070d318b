"""What the entry points print for errors: one line for input errors the project names itself, the
traceback for everything else (with a one-line hint for out-of-memory)."""

import pytest
import torch

from fststyle.cli import run_cli
from fststyle.errors import UserError


def exit_code_and_stderr(capsys, error: BaseException) -> tuple[int, str]:
    def fail():
        raise error

    with pytest.raises(SystemExit) as exit_info:
        run_cli(fail)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("error", [ValueError("data.batch_size must be >= 1\nmore"), FileNotFoundError("data.batch_size must be >= 1"),
                                   UserError("data.batch_size must be >= 1")])
def test_input_errors_are_one_line(capsys, error):
    assert exit_code_and_stderr(capsys, error) == (2, "error: data.batch_size must be >= 1\n")


@pytest.mark.parametrize("error", [RuntimeError("NCCL error in: ProcessGroupNCCL.cpp:1970, unhandled system error\nNCCL version 2.21"),
                                   RuntimeError("DataLoader worker (pid 4242) is killed by signal: Killed.")])
def test_runtime_errors_keep_their_traceback(capsys, error):
    with pytest.raises(RuntimeError) as raised:
        run_cli(lambda: (_ for _ in ()).throw(error))
    assert raised.value is error and capsys.readouterr().err == ""


def test_a_state_dict_mismatch_keeps_the_list_of_keys(capsys):
    small, large = torch.nn.Linear(2, 3), torch.nn.Sequential(torch.nn.Linear(2, 3))
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "0.weight", "0.bias"'):
        run_cli(lambda: large.load_state_dict(small.state_dict()))
    assert capsys.readouterr().err == ""


def test_out_of_memory_gets_a_hint_and_keeps_its_traceback(capsys):
    error = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
    with pytest.raises(torch.OutOfMemoryError):
        run_cli(lambda: (_ for _ in ()).throw(error))
    err = capsys.readouterr().err
    assert err.startswith("error: out of memory: training needs a smaller data.batch_size") and "tile=" in err and err.count("\n") == 1


def test_a_torch_compile_failure_keeps_its_traceback(capsys):
    import torch._dynamo.exc

    def fail():
        raise torch._dynamo.exc.BackendCompilerFailed(lambda: None, AttributeError("no attribute 'python_mod'"), None)

    with pytest.raises(torch._dynamo.exc.BackendCompilerFailed):
        run_cli(fail)
    assert "compile=false runs without it" in capsys.readouterr().err
