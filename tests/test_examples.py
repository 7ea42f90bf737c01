"""The study scripts in examples/ run end to end with --smoke and write their results and figures."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"

# script -> (figures it must write, text results.md must contain)
CASES = {
    "dd2424": (["bn_vs_nobn_accuracy.png", "bn_vs_nobn_loss.png", "lambda_coarse.png",
                "lambda_fine.png", "curves_3-layer_bn.png"], "## Lambda search"),
    "optimizers": (["val_accuracy.png", "val_accuracy_full.png"], "| AMSGrad |"),
    "init_and_dead_relus": (["activations_grid.png", "activations_relu_He.png",
                             "activations_tanh_sigma0.01.png", "dead_relus.png", "eggholder.png"],
                            "## (c) Dying ReLU networks"),
    "fashion_curves": (["learning_curves.png"], "## Model summaries"),
    "sklearn_and_dask": (["val_score_vs_alpha.png"], "## Grid search"),
}


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_smoke(name, tmp_path, capsys):
    if name == "sklearn_and_dask":
        pytest.importorskip("sklearn")
    out = tmp_path / name
    load(name).main(["--smoke", "--out", str(out)])
    figures, marker = CASES[name]
    results = (out / "results.md").read_text()
    assert marker in results
    assert "Total time:" in results
    for fig in figures:
        data = (out / fig).read_bytes()
        assert data[:4] == b"\x89PNG" and len(data) > 5000, fig
    assert "results.md" in capsys.readouterr().out
