"""One data source for every command: names, CSV (header, label by name, class names), npz, arrays."""
import numpy as np
import pytest
import torch

from deap_mln.data.source import check_source, load_source


def write_iris_like(path, header=True, label_at=2):
    """Four numeric columns and a class-name label column at ``label_at``."""
    rng = np.random.default_rng(0)
    names = ["setosa", "versicolor", "virginica"]
    lines = []
    if header:
        columns = ["a", "b", "c", "d"]
        columns.insert(label_at, "species")
        lines.append(",".join(columns))
    for i in range(60):
        cells = [f"{v:.3f}" for v in rng.random(4) + i % 3]
        cells.insert(label_at, names[i % 3])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_csv_with_class_names_maps_them_to_integers_in_sorted_order(tmp_path):
    data = load_source(f"csv:{write_iris_like(tmp_path / 'iris.csv')}", label="species")
    assert data.class_names == ("setosa", "versicolor", "virginica") and data.num_classes == 3
    assert data.x_train.shape == (48, 4) and data.x_test.shape == (12, 4)
    assert set(data.y_train.tolist()) == {0, 1, 2}
    assert torch.allclose(data.x_train.mean(0), torch.zeros(4), atol=1e-5)
    assert "setosa, versicolor, virginica" in data.source


def test_the_label_column_defaults_to_the_last_and_a_headerless_file_works(tmp_path):
    last = load_source(f"csv:{write_iris_like(tmp_path / 'a.csv', label_at=4)}")
    named = load_source(f"csv:{write_iris_like(tmp_path / 'b.csv', label_at=4)}", label="species")
    bare = load_source(f"csv:{write_iris_like(tmp_path / 'c.csv', header=False, label_at=4)}")
    for other in (named, bare):
        assert torch.equal(last.x_train, other.x_train) and torch.equal(last.y_train, other.y_train)


def test_integer_labels_stay_integers(tmp_path):
    (tmp_path / "d.csv").write_text("x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30)))
    data = load_source(f"csv:{tmp_path / 'd.csv'}")
    assert data.class_names is None and data.num_classes == 3


def test_arrays_work_as_a_source_like_an_npz_file(tmp_path):
    rng = np.random.default_rng(1)
    x, y, xt, yt = rng.random((40, 2, 3)), np.arange(40) % 2, rng.random((10, 2, 3)), np.arange(10) % 2
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=xt, y_test=yt)
    from_file = load_source(f"npz:{tmp_path / 'd.npz'}")
    from_arrays = load_source((x, y, xt, yt))
    assert from_file.x_train.shape == (40, 2, 3) and from_file.x_test.shape == (10, 2, 3)
    assert torch.equal(from_file.x_train, from_arrays.x_train) and torch.equal(from_file.y_test, from_arrays.y_test)
    assert load_source((x, y)).x_test.shape == (8, 2, 3)  # a seeded 20% held out as the test part
    assert "own test arrays" in from_file.source


def bad_csv(text):
    return lambda path: path.write_text(text)


def bad_npz(**arrays):
    return lambda path: np.savez(path, **arrays)


GOOD_X = np.random.default_rng(2).random((20, 3))
GOOD_Y = np.arange(20) % 2


@pytest.mark.parametrize("suffix, write, message", [
    ("csv", bad_csv("a,b,y\n1,2,0\n3,4\n"), "data row 2 has 2 columns, the first has 3"),
    ("csv", bad_csv("1,2,0\n3,x,1\n"), "data row 2 has a non-numeric value"),
    ("csv", bad_csv("a,y\n" + "".join(f"{i},{i % 2}\n" for i in range(9)) + "nan,1\n"), "inputs hold NaN or infinite"),
    ("csv", bad_csv("".join(f"{i},{i % 2 + 0.5}\n" for i in range(20))), "labels must be integers"),
    ("csv", bad_csv("".join(f"{i},{i % 2 - 1}\n" for i in range(20))), "labels must be non-negative"),
    ("csv", bad_csv("".join(f"{i},3\n" for i in range(20))), "a single class"),
    ("csv", bad_csv("0\n1\n"), "at least one input column and a label column"),
    ("npz", bad_npz(x=GOOD_X), "needs arrays 'x' and 'y'"),
    ("npz", bad_npz(x=GOOD_X, y=GOOD_Y[:5]), "labels must have shape (20,)"),
    ("npz", bad_npz(x=GOOD_Y, y=GOOD_Y), "inputs must have shape (N, features...)"),
    ("npz", bad_npz(x=np.where(GOOD_X > 0.5, np.inf, GOOD_X), y=GOOD_Y), "inputs hold NaN or infinite"),
    ("npz", bad_npz(x=GOOD_X, y=GOOD_Y, x_test=GOOD_X), "both 'x_test' and 'y_test' or neither"),
    ("npz", bad_npz(x=GOOD_X, y=GOOD_Y, x_test=GOOD_X[:, :2], y_test=GOOD_Y), "x_test's inputs have shape"),
])
def test_bad_data_is_a_one_line_error(tmp_path, suffix, write, message):
    path = tmp_path / f"bad.{suffix}"
    write(path)
    with pytest.raises(ValueError) as error:
        load_source(f"{suffix}:{path}")
    assert message in str(error.value) and "\n" not in str(error.value)




def test_a_label_needs_a_header_and_a_csv(tmp_path):
    (tmp_path / "d.csv").write_text("".join(f"{i},{i % 2}\n" for i in range(20)))
    with pytest.raises(ValueError, match="no header row"):
        load_source(f"csv:{tmp_path / 'd.csv'}", label="y")
    (tmp_path / "e.csv").write_text("a,b,label\n" + "".join(f"{i},{i},{i % 2}\n" for i in range(20)))
    with pytest.raises(ValueError, match="no column 'species'; the header has a, b, label"):
        load_source(f"csv:{tmp_path / 'e.csv'}", label="species")
    with pytest.raises(ValueError, match="not a CSV file"):
        load_source("digits", label="y")


def test_sources_are_checked_by_name():
    for good in ("digits", "mnist1d", "mnist", "fashion-mnist", "cifar10", "csv:a.csv", "npz:b.npz"):
        check_source(good)
    for bad in ("csv:", "tsv:x", "synthetic", "iris"):
        with pytest.raises(ValueError, match="unknown data source"):
            check_source(bad)
