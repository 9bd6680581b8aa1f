"""Loading models by name with their weights, preprocessing and class names -- offline and safely."""

from __future__ import annotations

import json
import re
import sys
import types
import warnings

import pytest
import torch
import torchvision

from conftest import SAMPLES
from mieruka import GradCAM, load_image, load_labels, load_model, to_photo
from mieruka.errors import MierukaWarning
from mieruka.labels import LabelsError
from mieruka.models import ModelError

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_default_model_sees_the_cat_and_looks_at_it(default_model):
    photo = load_image(SAMPLES / "cat.jpg")
    x = default_model.preprocess(photo)[None]
    result = GradCAM(default_model.model, labels=default_model.labels)(x)
    assert result.targets.item() in CAT_CLASSES
    assert result.labels[0] in {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
    on_photo, _ = to_photo(result.raw, default_model.preprocess.crop_box(photo.size), photo.size)
    y, x = divmod(on_photo[0].argmax().item(), photo.width)
    assert 60 <= x <= 380 and 40 <= y <= 300  # the cat's head and body; the blurred room lies to the right


def test_default_model_recognises_the_other_samples(default_model):
    batch = torch.stack(
        [default_model.preprocess(load_image(SAMPLES / n)) for n in ("coffee.jpg", "rocket.jpg")]
    )
    with torch.no_grad():
        top5 = default_model.model(batch).topk(5).indices.tolist()
    labels = default_model.labels
    assert "espresso" in [labels[i] for i in top5[0]]
    assert {"missile", "projectile", "space shuttle"} & {labels[i] for i in top5[1]}


def test_default_model_expects_tf_scaling(default_model):
    assert default_model.preprocess.mean == (0.5, 0.5, 0.5) and default_model.preprocess.std == (
        0.5,
        0.5,
        0.5,
    )
    assert len(default_model.labels) == 1000


@pytest.fixture
def finetuned(tmp_path):
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).eval()
    labels = tmp_path / "labels.txt"
    labels.write_text("daisy\ndandelion\nrose\nsunflower\ntulip\n")
    return model, labels


@pytest.mark.parametrize(
    "layout", ["bare", "state_dict", "model_state_dict", "dataparallel", "lightning", "torchscript"]
)
def test_fine_tuned_checkpoints_in_usual_layouts(tmp_path, finetuned, layout):
    model, labels = finetuned
    path = tmp_path / "ft.pth"
    state = model.state_dict()
    if layout == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.trace(model, torch.randn(1, 3, 64, 64)).save(str(path))
    else:
        saved = {
            "bare": state,
            "state_dict": {"state_dict": state, "epoch": 3},
            "model_state_dict": {"model_state_dict": state, "optimizer": {"lr": 0.1}},
            "dataparallel": {f"module.{k}": v for k, v in state.items()},
            # a LightningModule holding the network as self.model: every key starts with "model."
            "lightning": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 3},
        }[layout]
        torch.save(saved, path)
    loaded = load_model("resnet18", path, num_classes=5, labels=labels)
    assert loaded.labels == ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))


def test_mismatched_checkpoint_says_what_to_do(tmp_path, finetuned):
    model, _ = finetuned
    path = tmp_path / "ft.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(ModelError, match=r"does not fit resnet18: fc.weight is \[5, 512\].*--num-classes 5"):
        load_model("resnet18", path)
    with pytest.raises(ModelError, match="does not fit resnet50"):
        load_model("resnet50", path, num_classes=5)


def test_pickled_model_needs_explicit_trust(tmp_path, finetuned):
    model, _ = finetuned
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(ModelError, match="--trust-checkpoint"):
        load_model("resnet18", path, num_classes=5)
    with pytest.warns(MierukaWarning, match="no recipe of its own"):  # no --model: the recipe is a guess
        loaded = load_model(None, path, trust_checkpoint=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))


def test_a_whole_model_gets_the_recipe_it_was_trained_with_not_a_default(tmp_path):
    """A pickled timm model carries its recipe (and the input size it was built for); a torchvision
    one takes that of the architecture --model names, which must be its class; with neither, the
    ImageNet recipe is said in a warning. --num-classes that is not the model's head is refused."""
    import timm

    vit = tmp_path / "vit.pt"
    torch.save(timm.create_model("vit_tiny_patch16_224", img_size=320, num_classes=3), vit)
    loaded = load_model(None, vit, trust_checkpoint=True)
    assert (loaded.name, loaded.preprocess.crop, loaded.preprocess.mean) == (
        "timm:vit_tiny_patch16_224",
        (320, 320),
        (0.5, 0.5, 0.5),
    )
    with pytest.raises(
        ModelError, match=r"is timm's vit_tiny_patch16_224; .* name it timm:vit_tiny_patch16_224"
    ):
        load_model("timm:vit_small_patch16_224", vit, trust_checkpoint=True)

    inception = tmp_path / "inception.pt"
    model = torchvision.models.inception_v3(weights=None, num_classes=5, aux_logits=False, init_weights=False)
    torch.save(model, inception)
    loaded = load_model("inception_v3", inception, trust_checkpoint=True)
    assert (loaded.preprocess.resize, loaded.preprocess.crop) == (342, 299)  # torchvision's recipe for it
    with pytest.raises(
        ModelError, match=r"--model resnet18 builds ResNet; .* is Inception3: leave out --model"
    ):
        load_model("resnet18", inception, trust_checkpoint=True)
    with pytest.raises(ModelError, match=r"--num-classes 7: the whole model .* has 5 outputs"):
        load_model("inception_v3", inception, num_classes=7, trust_checkpoint=True)
    with pytest.warns(MierukaWarning, match=r"whole Inception3 model with no recipe of its own: .* --model"):
        loaded = load_model(None, inception, trust_checkpoint=True)
    assert (loaded.preprocess.resize, loaded.preprocess.crop) == (256, 224)


def _pickled_elsewhere(tmp_path, module_name: str):
    """A whole model pickled with its class in `module_name`, then that class gone: as a model saved
    from someone's script or package and loaded where that code is not."""
    module = sys.modules.setdefault(module_name, types.ModuleType(module_name))
    net = type("Net", (torch.nn.Sequential,), {"__module__": module_name})
    module.Net = net
    path = tmp_path / f"{module_name}.pt"
    try:
        torch.save(net(torch.nn.Conv2d(3, 2, 1)), path)
    finally:
        del module.Net
        if module_name != "__main__":
            del sys.modules[module_name]
    return path


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("__main__", "class Net was defined in the script that saved it .* save model.state_dict"),
        ("my_models_gone", "needs the module 'my_models_gone', .* PYTHONPATH"),
    ],
)
def test_a_pickled_model_whose_code_is_missing_says_what_to_do(tmp_path, module, message):
    path = _pickled_elsewhere(tmp_path, module)
    with pytest.raises(ModelError, match=rf"--weights {re.escape(str(path))}: .*{message}"):
        load_model(None, path, trust_checkpoint=True)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("hello")
    with pytest.raises(ModelError, match="not a PyTorch checkpoint"):
        load_model("resnet18", path)


def test_a_text_file_is_not_mistaken_for_a_pickled_model(tmp_path):
    """'cat\ndog' reads, to the unpickler, as a request for the global 'at.dog': never advise
    --trust-checkpoint for a file torch.save did not write."""
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog\n")
    with pytest.raises(ModelError, match="not a PyTorch checkpoint") as raised:
        load_model("resnet18", path)
    assert "trust" not in str(raised.value)


def test_a_damaged_file_is_not_mistaken_for_a_pickled_model(tmp_path):
    """Bytes the safe loader cannot read are a damaged file: never advise --trust-checkpoint for them."""
    path = tmp_path / "damaged.pth"
    path.write_bytes(b"garbage")
    with pytest.raises(
        ModelError,
        match=r"not a PyTorch checkpoint, or a damaged or incompletely copied one \(Unsupported operand",
    ) as raised:
        load_model("resnet18", path)
    assert "trust" not in str(raised.value)


def test_named_weights_come_only_from_the_local_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"IMAGENET1K_V1: not in the local torch cache"):
        load_model("resnet18", "IMAGENET1K_V1")
    with pytest.raises(ModelError, match=r"imagenet1k_v1: no such file \(.* in capitals: IMAGENET1K_V1\)"):
        load_model("resnet18", "imagenet1k_v1")
    checkpoint = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    checkpoint.parent.mkdir(parents=True)
    torch.save(torchvision.models.resnet18().state_dict(), checkpoint)
    loaded = load_model("resnet18", "IMAGENET1K_V1")
    assert loaded.labels[281] == "tabby" and loaded.preprocess.crop == 224


def test_unknown_architecture_suggests_names():
    with pytest.raises(ModelError, match="did you mean resnet18"):
        load_model("resnet-18")


def test_labels_from_text_and_json(tmp_path):
    (tmp_path / "a.txt").write_text("cat\ndog\n\n")  # blank lines at the end are no classes
    (tmp_path / "b.json").write_text(json.dumps(["cat", "dog"]))
    (tmp_path / "c.json").write_text(json.dumps({"1": "dog", "0": "cat"}))
    (tmp_path / "d.json").write_text(json.dumps({"0": ["n02123045", "cat"], "1": ["n02084071", "dog"]}))
    for name in ("a.txt", "b.json", "c.json", "d.json"):
        assert load_labels(tmp_path / name) == ["cat", "dog"]
    for text, line in [("cat\n\ndog\n", 2), ("\ncat\ndog\n", 1), ("cat\n   \ndog", 2)]:
        (tmp_path / "blank.txt").write_text(text)  # the class of index 1 with no name, or a stray line?
        with pytest.raises(LabelsError, match=rf"blank.txt: line {line} is blank: .* would shift every name"):
            load_labels(tmp_path / "blank.txt")
    (tmp_path / "e.json").write_text("{")
    with pytest.raises(LabelsError, match="not valid JSON"):
        load_labels(tmp_path / "e.json")


def test_label_count_must_match_the_head(tmp_path):
    (tmp_path / "l.txt").write_text("a\nb\nc\n")
    with pytest.raises(
        ModelError, match=r"^--labels .*l\.txt: the labels name 3 classes but the model has 5"
    ):
        load_model("resnet18", num_classes=5, labels=tmp_path / "l.txt", random_weights=True)


def test_a_named_architecture_without_weights_is_refused_unless_asked_for():
    with pytest.raises(ModelError, match=r"--weights FILE.*--weights IMAGENET1K_V1.*--random-weights"):
        load_model("resnet18")
    with pytest.raises(ModelError, match="--random-weights"):
        load_model("timm:resnet18", num_classes=5)
    with pytest.raises(ModelError, match="not both"):
        load_model("resnet18", "IMAGENET1K_V1", random_weights=True)
    untrained = load_model("resnet18", random_weights=True)
    assert untrained.random_weights and untrained.weights == "random"
    assert load_model().weights == "default" and not load_model().random_weights


def test_builder_arguments_build_the_model_as_it_was_trained(tmp_path):
    """A timm ViT fine-tuned with an average-pooled head has other tensors than the default one: its
    checkpoint loads once the same builder arguments are given, and is refused with a hint before."""
    import timm

    torch.manual_seed(0)
    pooled = timm.create_model("vit_tiny_patch16_224", num_classes=3, global_pool="avg", class_token=False)
    path = tmp_path / "pooled.pth"
    torch.save(pooled.state_dict(), path)
    with pytest.raises(ModelError, match=r"does not fit vit_tiny_patch16_224: .*--model-kwargs KEY=VALUE"):
        load_model("timm:vit_tiny_patch16_224", path, num_classes=3)
    options = {"global_pool": "avg", "class_token": False}
    loaded = load_model("timm:vit_tiny_patch16_224", path, num_classes=3, model_kwargs=options)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), pooled.eval()(x))
    assert GradCAM(loaded.model)(x).layer == "norm"  # the pooled head's rule, not the class token's


@pytest.mark.parametrize(
    ("name", "options", "size"),
    [
        ("timm:vit_tiny_patch16_224", {"img_size": 384}, (384, 384)),
        ("timm:vit_tiny_patch16_224", {"img_size": (256, 320)}, (320, 256)),  # (height, width)
        ("vit_b_16", {"image_size": 384}, (384, 384)),
    ],
)
def test_an_input_size_given_to_the_builder_sets_the_crop(name, options, size):
    """timm's data config keeps the pretrained 224 whatever `img_size` says; the model would then
    refuse every photo. The size the model was built for is the size it is given."""
    from PIL import Image

    loaded = load_model(name, random_weights=True, model_kwargs=options)
    photo = Image.new("RGB", (640, 480))
    x = loaded.preprocess(photo)[None]
    assert (x.shape[-1], x.shape[-2]) == size
    resize = loaded.preprocess.resize  # one side, or (height, width) for a non-square input (timm's rule)
    height, width = resize if isinstance(resize, tuple) else (resize, resize)
    assert height >= size[1] and width >= size[0]  # resized, then the centre cropped, as in training
    with torch.no_grad():
        assert loaded.model(x).shape == (1, 1000)


def test_a_builder_argument_that_changes_nothing_is_named_in_a_warning():
    """MobileNetV3 takes **kwargs and drops names it does not know: `dropuot` would build the default
    model without a word. A real argument, which changes the model, gets no warning."""
    from mieruka.errors import MierukaWarning

    with pytest.warns(MierukaWarning, match=r"dropuot=0.3 changed nothing in mobilenet_v3_small.*dropout"):
        load_model("mobilenet_v3_small", random_weights=True, model_kwargs={"dropuot": 0.3})
    with warnings.catch_warnings():
        warnings.simplefilter("error", MierukaWarning)
        loaded = load_model("mobilenet_v3_small", random_weights=True, model_kwargs={"dropout": 0.3})
    assert loaded.model.classifier[2].p == 0.3


@pytest.mark.parametrize(
    ("name", "recipe"),
    [
        ("resnet18", (256, 224, "bilinear")),  # the classic recipe, as in 0.1
        ("inception_v3", (342, 299, "bilinear")),  # its file holds the training-only AuxLogits too
        ("efficientnet_v2_s", (384, 384, "bilinear")),
        ("swin_t", (232, 224, "bicubic")),
        ("vit_h_14", (224, 224, "bicubic")),  # DEFAULT is at 518; built for 224, its 224 weights' recipe
    ],
)
def test_weights_of_ones_own_get_the_recipe_of_the_architectures_published_weights(tmp_path, name, recipe):
    """A fine-tuned torchvision model is preprocessed as its DEFAULT weights were (what fine-tuning
    starts from), at the size the model was built for; not at 256 / 224 whatever the architecture."""
    import torchvision.models as tvm

    if name == "vit_h_14":
        loaded = load_model(name, random_weights=True)
    else:
        path = tmp_path / "ft.pth"
        quiet = {"init_weights": False} if name == "inception_v3" else {}  # no notice of a future default
        torch.save(tvm.get_model(name, weights=None, num_classes=3, **quiet).state_dict(), path)
        loaded = load_model(name, weights=path, num_classes=3)
    preprocess = loaded.preprocess
    assert (preprocess.resize, preprocess.crop, preprocess.interpolation) == recipe
    assert preprocess.mean == (0.485, 0.456, 0.406)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_classes": 3}, "num_classes has its own option: --num-classes N"),
        ({"pretrained": True}, "pretrained would download weights: give a file with --weights"),
        ({"checkpoint_path": "ft.pth"}, "checkpoint_path is what --weights does"),
        ({"in_chans": 1}, "photos are read as RGB, so in_chans must be 3, got 1"),
        (
            {"class_token": "Flase"},
            "class_token of timm:vit_tiny_patch16_224 takes True or False, got 'Flase'",
        ),
        ({"depth": "twelve"}, "depth of timm:vit_tiny_patch16_224 takes a number, got 'twelve'"),
        ({"global_pool": None}, "timm ignores arguments set to None, so global_pool=None would keep its"),
        ({"no_such_argument": 1}, r"cannot build timm:vit_tiny_patch16_224 with --model-kwargs no_such"),
        ({"global_pool": "sideways"}, r"cannot build .* global_pool='sideways': "),
        ({"img_size": "big"}, r"img_size must be a number of pixels or \(height, width\), got 'big'"),
    ],
)
def test_builder_arguments_that_cannot_be_used_are_refused_in_one_line(options, message):
    with pytest.raises(ModelError, match=message) as error:
        load_model("timm:vit_tiny_patch16_224", random_weights=True, model_kwargs=options)
    assert "\n" not in str(error.value)


def test_builder_arguments_need_a_named_architecture(tmp_path, finetuned):
    model, _ = finetuned
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    with pytest.raises(
        ModelError, match=r"--weights .* is a whole model, built already: leave out --model-kw"
    ):
        load_model(weights=path, trust_checkpoint=True, model_kwargs={"zero_init_residual": True})
    with pytest.raises(ModelError, match="named with --model; the default model takes none"):
        load_model(model_kwargs={"drop_rate": 0.1})


def test_builder_arguments_on_the_command_line_read_as_python_literals_else_text():
    from mieruka.cli.common import model_kwargs_from_flag

    parsed = model_kwargs_from_flag(
        ["global_pool=avg", "class_token=False", "img_size=(384, 384)", "drop_rate=0.1", "qk_norm=true"]
    )
    assert parsed == {
        "global_pool": "avg",
        "class_token": False,
        "img_size": (384, 384),
        "drop_rate": 0.1,
        "qk_norm": True,  # not the text "true", which would count as True and False alike
    }
    assert model_kwargs_from_flag(["class_token=FALSE", "act_layer=none"]) == {
        "class_token": False,
        "act_layer": None,
    }
    with pytest.raises(ValueError, match=r"expected KEY=VALUE, got 'photo.jpg': .* put paths before"):
        model_kwargs_from_flag(["global_pool=avg", "photo.jpg"])
    with pytest.raises(ValueError, match="--model-kwargs: img_size is given twice"):
        model_kwargs_from_flag(["img_size=224", "img_size=384"])


def test_a_checkpoint_that_does_not_fit_says_what_to_give(tmp_path):
    """Trained at another size: the position embedding says so. Another architecture altogether:
    most tensors are missing, and --model is the fix, not builder arguments."""
    import timm

    path = tmp_path / "at384.pth"
    torch.save(timm.create_model("vit_tiny_patch16_224", img_size=384).state_dict(), path)
    with pytest.raises(ModelError, match=r"pos_embed .* another input size\? .*--model-kwargs img_size=N"):
        load_model("timm:vit_tiny_patch16_224", path)
    loaded = load_model("timm:vit_tiny_patch16_224", path, model_kwargs={"img_size": 384})
    assert loaded.preprocess.crop == 384
    with pytest.raises(ModelError, match=r"another architecture, size or depth\? name it with --model, "):
        load_model("resnet18", path)


@pytest.mark.parametrize(
    ("saved", "named", "kwargs"),
    [
        (lambda: torchvision.models.resnet34(num_classes=3), "resnet18", {"num_classes": 3}),  # 96 more
        (lambda: torchvision.models.resnet18(num_classes=3), "resnet34", {"num_classes": 3}),  # 96 fewer
        (lambda: torchvision.models.wide_resnet50_2(), "resnet50", {}),  # the same names, wider
    ],
)
def test_weights_of_another_size_point_at_the_model_first_and_never_at_the_head(
    tmp_path, saved, named, kwargs
):
    """A deeper, shallower or wider variant: --model is the fix. A layer whose shape differs only in
    its first dimension is no head unless it is the classifier."""
    path = tmp_path / "other.pth"
    torch.save(saved().state_dict(), path)
    with pytest.raises(
        ModelError, match=r"another architecture, size or depth\? name it with --model"
    ) as raised:
        load_model(named, path, **kwargs)
    assert "--num-classes" not in str(raised.value)


def test_a_truncated_checkpoint_is_named_as_one_with_torch_s_reason_in_one_whole_sentence(tmp_path):
    full, cut = tmp_path / "full.pth", tmp_path / "cut.pth"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), full)
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(ModelError, match="damaged or incompletely copied one") as raised:
        load_model("resnet18", cut, num_classes=3)
    message = str(raised.value)
    assert message.endswith(")") and len(message) < 400 and "\n" not in message


def test_the_ray_model_spec_carries_builder_arguments_to_each_actor():
    from mieruka.scale.ray import ModelSpec

    spec = ModelSpec("resnet18", random_weights=True, model_kwargs=(("zero_init_residual", True),))
    model = spec.load().model
    assert model.layer1[0].bn2.weight.abs().sum() == 0  # zero_init_residual reached the builder


def test_a_checkpoint_with_damaged_tensor_bytes_is_refused_not_loaded_with_wrong_weights(tmp_path):
    """torch.load does not verify the zip's checksums: zeroed bytes inside a tensor would load silently."""
    model = torchvision.models.resnet18(num_classes=3)
    good, bad = tmp_path / "good.pth", tmp_path / "bad.pth"
    torch.save(model.state_dict(), good)
    data = bytearray(good.read_bytes())
    middle = len(data) // 2  # inside the largest tensor's bytes (layer4's convolutions)
    data[middle : middle + 64] = bytes(64)
    bad.write_bytes(bytes(data))
    assert torch.load(bad, weights_only=True).keys() == model.state_dict().keys()  # torch sees nothing wrong
    with pytest.raises(
        ModelError, match=r"bad.pth: damaged or incompletely copied \(its part .*data/\d+ fails"
    ):
        load_model("resnet18", bad, num_classes=3)
    load_model("resnet18", good, num_classes=3)  # an intact file still loads


def test_a_timm_pretrained_tag_names_the_recipe_its_weights_were_trained_with(tmp_path):
    """resnet18.tv_in1k (torchvision's weights: bilinear, crop 0.875) and resnet18.a1_in1k (timm's A1
    recipe: bicubic, crop 0.95) are one architecture with two recipes; a file of one's weights loads."""
    import timm

    tv = load_model("timm:resnet18.tv_in1k", random_weights=True)
    a1 = load_model("timm:resnet18.a1_in1k", random_weights=True)
    assert (tv.name, tv.preprocess.resize, tv.preprocess.interpolation) == (
        "timm:resnet18.tv_in1k",
        256,
        "bilinear",
    )
    assert (a1.preprocess.resize, a1.preprocess.interpolation) == (235, "bicubic")
    path = tmp_path / "ft.pth"
    torch.save(timm.create_model("resnet18", num_classes=3).state_dict(), path)
    assert load_model("timm:resnet18.a1_in1k", path, num_classes=3).preprocess == a1.preprocess
    with pytest.raises(
        ModelError, match=r"no pretrained tag 'resnet18.a9_in1k' \(did you mean timm:resnet18\.a"
    ):
        load_model("timm:resnet18.a9_in1k", random_weights=True)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("timm:convnextv2_nano.fcmae_ft_in22k_in1k_384", {}),  # crop_mode 'squash': the whole photo
        ("timm:vit_tiny_patch16_224", {"img_size": (64, 128), "patch_size": 16, "depth": 1}),  # not square
    ],
)
def test_a_timm_model_sees_the_pixels_timm_s_own_eval_transform_gives(name, kwargs):
    import timm

    loaded = load_model(name, random_weights=True, model_kwargs=kwargs)
    config = timm.data.resolve_model_data_config(loaded.model)
    if "img_size" in kwargs:
        config["input_size"] = (3, *kwargs["img_size"])  # timm's config keeps the pretrained size
    photo = load_image(SAMPLES / "cat.jpg")
    theirs = timm.data.create_transform(**config)(photo)
    assert (loaded.preprocess(photo) - theirs).abs().max() < 1e-5
