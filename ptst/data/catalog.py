"""The registered data sets: files (pinned sha256 + canonical URL), licences, sizes and loaders."""

from __future__ import annotations

from typing import NamedTuple

import ptst.data.loaders as L
from ptst.data.types import DatasetSpec, FileSpec, Loader
from ptst.registry import Registry

DATASETS: Registry[DatasetSpec] = Registry("data set")


class EvalDefaults(NamedTuple):
    """What `ptst eval` infers for a data set given without kind, scorer or split (None: nothing inferred)."""

    kind: str | None  # "helpfulness", "safety" or "over-refusal"
    scorer: str | None
    split: str | None


_EVAL_KIND = {"safety-eval": "safety", "over-refusal": "over-refusal"}


def eval_defaults(name: str) -> EvalDefaults:
    """A set that names a scorer is a helpfulness eval on its helpfulness-eval split (gsm8k -> gsm8k on `test`);
    a safety-eval set is a safety eval and an over-refusal set an over-refusal eval, on their default split.
    Custom files (`jsonl:PATH`), unknown names and training-only sets infer nothing: they need an explicit kind
    (and scorer)."""
    if name not in DATASETS:
        return EvalDefaults(None, None, None)
    spec = DATASETS.get(name)
    if spec.scorer:
        return EvalDefaults("helpfulness", spec.scorer, spec.helpfulness_split)
    return EvalDefaults(_EVAL_KIND.get(spec.kind), None, None)

GH = "https://raw.githubusercontent.com"
HF = "https://huggingface.co/datasets"
GSM8K = f"{GH}/openai/grade-school-math/3101c7d5072418e28b9008a6636bde82a006892c/grade_school_math/data"
ARC_ZIP = "https://ai2-public-datasets.s3.amazonaws.com/arc/ARC-V1-Feb2018.zip"
STL = f"{GH}/vinid/safety-tuned-llamas/36a4b8d5c2177ed165bf61f59b590161394f7f12/data"
JBB = f"{GH}/JailbreakBench/artifacts/909e68c01d94222b8ad2e397a017e2e12e2adb73/attack-artifacts/GCG"
# HarmBench and StrongREJECT: upstream has no commit known here, so downloads come from the vendored copies the
# pinned files were taken from (../shared/data/MANIFEST.md 9b, 9d), at that commit; upstream `main` may drift.
ADVLLM = f"{GH}/busycalibrating/AdversariaLLM"
HARMBENCH = f"{ADVLLM}/a4b57364bc2b0785bd0e6f79eec4948e3991b8b0/data/behavior_datasets"
STRONGREJECT = f"{ADVLLM}/f970939273ea17b491fadf6001fddc36ed3ae3ff/data/behavior_datasets/strongreject_dataset.csv"
XSTEST = f"{GH}/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/xstest_prompts.csv"
NC = "CC BY-NC 4.0"


def _add(
    name: str, kind: str, files: dict[str, FileSpec], loader: Loader, *, licence: str, source: str,
    sizes: dict[str, int] | None = None, nc: bool = False, description: str = "",
    split_kinds: dict[str, str] | None = None, scorer: str | None = None,
) -> None:
    DATASETS.register(name, DatasetSpec(
        name=name, kind=kind, splits=tuple(files), files={s: (f,) for s, f in files.items()}, licence=licence,
        non_commercial=nc, loader=loader, source=source, description=description, sizes=sizes or {},
        split_kinds=split_kinds or {}, scorer=scorer,
    ))


# ---- fine-tuning sets (their test splits measure helpfulness) ----
_add("gsm8k", "train", {
    "train": FileSpec("gsm8k/train.jsonl", "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
                      f"{GSM8K}/train.jsonl"),
    "test": FileSpec("gsm8k/test.jsonl", "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
                     f"{GSM8K}/test.jsonl"),
}, L.load_gsm8k, licence="MIT", source="https://github.com/openai/grade-school-math",
    sizes={"train": 7473, "test": 1319}, split_kinds={"test": "helpfulness-eval"}, scorer="gsm8k",
    description="grade-school maths; reference = the number after ####")

_ARC_SHA = {
    "Easy": {"train": "c62e5482d8c01f2d5a7f24239ac9db3b12f9e47267c4e3f088c6ffe41d5545ef",
             "dev": "f4364b808a68df6bf500ce1070fb0105d40cacd2391c210deb00ff83ba75d1f4",
             "test": "ce32a0774b4beb1977d2c6b16dda5dd2b24fdc9c7f506882c452678676bd09be"},
    "Challenge": {"train": "e02837c53ee86f6d73c259f91c77725c5062ef4531130b7f473a9d9b01118a77",
                  "dev": "55224364abd2477f66a9a57c5cbef109fb71d83019aa5e37aec0e7ab757746ca",
                  "test": "9fa8ffb3e3a1f88cb302d53dd95aae81e39209ad9bcf974376b319d8fd35717c"},
}
_ARC_SIZES = {"Easy": {"train": 2251, "dev": 570, "test": 2376}, "Challenge": {"train": 1119, "dev": 299, "test": 1172}}
for _level, _shas in _ARC_SHA.items():
    _files = {}
    for _split, _sha in _shas.items():
        _rel = f"ARC-{_level}/ARC-{_level}-{_split.capitalize()}.jsonl"
        _files[_split] = FileSpec(f"arc/{_rel}", _sha, ARC_ZIP, member=f"ARC-V1-Feb2018-2/{_rel}")
    _add(f"arc-{_level.lower()}", "train", _files, L.load_arc, licence="CC BY-SA 4.0",
         source="https://allenai.org/data/arc", sizes=_ARC_SIZES[_level], split_kinds={"test": "helpfulness-eval"},
         scorer="arc",
         description=f"ARC-{_level} multiple choice; input = stem + lettered choices + 'Answer:', reference = letter")

_CHATDOCTOR = FileSpec("chatdoctor/chatdoctor5k.json",
                       "780c1a6aa67d461359ac220c120134429290b1e340545c3ad8954e1aa235d80f",
                       f"{GH}/Kent0n-Li/ChatDoctor/e77bd7ebafbffb6d82be3410cd0d4ebebe75a516/chatdoctor5k.json")
_add("chatdoctor", "train", {"train": _CHATDOCTOR, "test": _CHATDOCTOR}, L.load_chatdoctor,
     licence="Apache-2.0 repo; academic research only, no commercial or clinical use", nc=True,
     source="https://github.com/Kent0n-Li/ChatDoctor", sizes={"train": 4900, "test": 552},
     split_kinds={"test": "helpfulness-eval"}, scorer="chatdoctor",
     description="GenMedGPT-5k synthetic patient-doctor dialogues (ChatGPT-generated; not for clinical use); "
                 "test = the ~10% of patient texts whose sha256 is 0 mod 10, reference = the doctor's answer")

_add("alpaca", "train", {
    "train": FileSpec("alpaca/alpaca_data.json", None,
                      f"{GH}/tatsu-lab/stanford_alpaca/761dc5bfbdeeffa89b8bff5d038781a4055f796a/alpaca_data.json"),
}, L.load_instruction_json, licence=NC, nc=True, source="https://github.com/tatsu-lab/stanford_alpaca",
    sizes={"train": 52002}, description="Stanford Alpaca 52k (download only; sha256 not pinned)")

_add("alpaca-safety-subset", "train", {
    "train": FileSpec(
        "alpaca/alpaca_data_safety_only.json", "b061c8b5f6ccbfc9ac0110f2ea1516cdfd45aa73ff9d725f5ab5d2e482fe4c92",
        f"{GH}/LLM-Tuning-Safety/LLMs-Finetuning-Safety/8a3b38f11be1c3829e2b0ed379d3661ebc84e7db/llama2/ft_datasets/"
        "alpaca_dataset/alpaca_data_safety_only.json"),
}, L.load_instruction_json, licence=NC, nc=True, source="https://github.com/LLM-Tuning-Safety/LLMs-Finetuning-Safety",
    sizes={"train": 1904},
    description="BIASED: the 1,904 Alpaca rows Qi et al. removed as safety-related; not a random Alpaca sample")

_add("safety", "train", {
    "train": FileSpec("safety_tuned_llamas/training/safety_only_data_Instructions.json",
                      "7dde08acf87f10cf74fd1b76f56538eae8e413ae8e6b09e3f7bcd97769058dbe",
                      f"{STL}/training/safety_only_data_Instructions.json"),
}, L.load_instruction_json, licence=NC, nc=True, source="https://github.com/vinid/safety-tuned-llamas",
    sizes={"train": 2483}, description="Bianchi et al.'s 2,483 harmful instructions with refusals (safety mix-in)")

_add("openorca", "train", {
    "gpt4": FileSpec("openorca/1M-GPT4-Augmented.parquet", None,
                     f"{HF}/Open-Orca/OpenOrca/resolve/main/1M-GPT4-Augmented.parquet"),
    "gpt3.5": FileSpec("openorca/3_5M-GPT3_5-Augmented.parquet", None,
                       f"{HF}/Open-Orca/OpenOrca/resolve/main/3_5M-GPT3_5-Augmented.parquet"),
}, L.load_openorca, licence="MIT (contains OpenAI model outputs)", source="https://huggingface.co/datasets/Open-Orca/OpenOrca",
    description="OpenOrca (HF only; large Parquet; system prompt in meta); sha256 not pinned")

# ---- safety evaluation sets (harmful requests; content warning) ----
_add("advbench", "safety-eval", {
    "test": FileSpec("advbench/ptst_advbench-harmful-behaviors.csv",
                     "ddbbd16619070d1ddba479dda1acc603abc1a222d797fe015f20669a996d7388",
                     f"{GH}/vfleaking/PTST/5b14afdaa45bd98d2b801bf4ccc323576c9b80bb/data/advbench-harmful-behaviors.csv"),
}, L.load_advbench, licence="MIT", source="https://github.com/llm-attacks/llm-attacks", sizes={"test": 520},
    description="AdvBench harmful behaviours (goals; PTST's copy, same 520 goals as llm-attacks)")

_add("directharm4", "safety-eval", {
    "test": FileSpec("directharm4/data/test-00000-of-00001.parquet",
                     "dcb2fbf2ca6d6208a40abe660e6643f6a8c1357231a367891c7c592b8f604711",
                     f"{HF}/vfleaking/DirectHarm4/resolve/main/data/test-00000-of-00001.parquet"),
}, L.load_instruction_parquet, licence="Apache-2.0", source="https://huggingface.co/datasets/vfleaking/DirectHarm4",
    sizes={"test": 400}, description="PTST's DirectHarm4: 4 categories x 100 (meta.category)")

_add("gsm-danger", "safety-eval", {
    "test": FileSpec("gsm-danger/data/test-00000-of-00001.parquet", None,
                     f"{HF}/vfleaking/GSM-Danger/resolve/main/data/test-00000-of-00001.parquet"),
}, L.load_instruction_parquet, licence="Apache-2.0", source="https://huggingface.co/datasets/vfleaking/GSM-Danger",
    sizes={"test": 100}, description="PTST's GSM-Danger (HF only; sha256 not pinned)")

_HB_SHA = {"test": "75d257b3e7428c52eb7b0154318f455af3e01b09a3794b5e2f3d36054f3c0e29",
           "val": "7bfaaa5e2b9b95002c89e2d33c019f58e9e8496e2fc65d368f1eeb8179e69534",
           "all": "8d81accedd38eaaf8b760618622bb888417d1fd0c86eba65c427a16f1cbb4afc"}
_add("harmbench", "safety-eval", {
    s: FileSpec(f"harmbench/harmbench_behaviors_text_{s}.csv", sha, f"{HARMBENCH}/harmbench_behaviors_text_{s}.csv")
    for s, sha in _HB_SHA.items()
}, L.load_harmbench, licence="MIT", source="https://github.com/centerforaisafety/HarmBench",
    sizes={"test": 320, "val": 80, "all": 400},
    description="HarmBench text behaviours; contextual ones are prefixed by their context as HarmBench does")

_add("strongreject", "safety-eval", {
    "test": FileSpec("strongreject/strongreject_dataset.csv",
                     "4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381",
                     STRONGREJECT),
}, L.load_strongreject, licence="unverified (not stated by the copy used; check upstream)",
    source="https://github.com/alexandrasouly/strongreject", sizes={"test": 313},
    description="StrongREJECT forbidden prompts (meta.category, meta.source)")

_JBB_SHA = {
    "llama-2-7b-chat-hf": ("white_box", "f76cbaf899c79ca8eed6a6ed26d6f8789933c5595a9a5ee028e305dec4dd95f7"),
    "vicuna-13b-v1.5": ("white_box", "9eff8b6f78cae002737868ca8cdd886be5afcd1cbbbe4cf51ff837bc688b01b1"),
    "gpt-3.5-turbo-1106": ("transfer", "ff185b1dc73732d830e96efdb3f4a92294ee72e9c88a1800b1d11d4ecb3d4cdf"),
    "gpt-4-0125-preview": ("transfer", "af54543a06e3702256315517ee6e6a7b0edf182dd2c6d938216fa58cbea8de23"),
}
_JBB_FILES = {
    m: FileSpec(f"jailbreakbench/attack-artifacts/GCG/{kind}/{m}.json", sha, f"{JBB}/{kind}/{m}.json")
    for m, (kind, sha) in _JBB_SHA.items()
}
_add("jailbreakbench", "safety-eval", {"test": _JBB_FILES["llama-2-7b-chat-hf"]}, L.load_jbb_behaviors,
     licence="MIT", source="https://github.com/JailbreakBench/jailbreakbench", sizes={"test": 100},
     description="JBB-Behaviors' 100 harmful goals (March-2024 strings, read from the GCG artifact)")
_add("jailbreakbench-gcg", "safety-eval", _JBB_FILES, L.load_jbb_gcg, licence="MIT",
     source="https://github.com/JailbreakBench/artifacts", sizes=dict.fromkeys(_JBB_FILES, 100),
     description="JBB GCG attack prompts (goal + suffix); split = the artifact's target model")

_STL_EVAL = {
    "I-MaliciousInstructions": ("7a2bc751d49983800848050282aa2a84b3faa7044c3178228c49dd68df7d679f", 100),
    "I-CoNa": ("e07d92e376198e60ac1004902dc3fec46513ac70b08d855b4101288b8270d62a", 178),
    "I-Controversial": ("0590fc6ee97a39c6a43adc21fe5a4ccbf546ea52e89a32757db6ea3d46ce65c4", 40),
    "I-PhysicalSafetyUnsafe": ("16324a2f1ded933e8c7a9f6c7d3924130f76260d03f9df2205e0a25c02de8aae", 100),
    "I-PhysicalSafetySafe": ("34c874532623e405fb574f0fa8d6b86cbecce0e3340f67b146a6a6bc2453bed6", 100),
    "Q-Harm": ("ecc1d19030d41ad550a1e69996dc424074e3e45fb2fa5e8e44b46f294aea295a", 100),
    "I-Alpaca": ("30db84ee303df15b653566437ccf1a2fc837caac99a570915d720f65f041fe6d", 50),
}
_add("safety-eval", "safety-eval", {
    s: FileSpec(f"safety_tuned_llamas/evaluation/{s}.json", sha, f"{STL}/evaluation/{s}.json")
    for s, (sha, _) in _STL_EVAL.items()
}, L.load_instruction_list, licence=NC, nc=True, source="https://github.com/vinid/safety-tuned-llamas",
    sizes={s: n for s, (_, n) in _STL_EVAL.items()}, split_kinds={"I-Alpaca": "helpfulness-eval"},
    description="Bianchi et al.'s evaluation sets; split = file (I-Alpaca is a benign control)")

# ---- over-refusal ----
_XSTEST = FileSpec("xstest/xstest_prompts.csv", "11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a",
                   XSTEST)
for _name, _label, _kind, _n, _what in [
    ("xstest", None, "over-refusal", 450, "all 450 prompts"),
    ("xstest-safe", "safe", "over-refusal", 250, "the 250 safe prompts (the over-refusal set)"),
    ("xstest-unsafe", "unsafe", "safety-eval", 200, "the 200 unsafe contrast prompts"),
]:
    _add(_name, _kind, {"test": _XSTEST}, L.xstest_loader(_label), licence="CC BY 4.0",
         source="https://github.com/paul-rottger/exaggerated-safety", sizes={"test": _n},
         description=f"XSTest: {_what}; meta.label, meta.type")

# ---- judge validation (human-labelled answers; `ptst judge validate`) ----
XSTEST_COMPLETIONS = f"{GH}/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/model_completions"
_XSTEST_COMPLETIONS = {
    "gpt4": "71af323af8ecdec0efae23992317721441d2cfedddedeef3248f842f4e15c9ca",
    "llama2new": "6365cc55ce0a593c7ab8785853d02784be027d97199d4077912b4313cd010099",
    "llama2orig": "cbc52550e8ba8197a3e3d97a5af078d27bae4766737cd62df80270126a87ffc6",
    "mistralguard": "0ac03817b65e019a8f5b4b3eed805086f9f7fafe538ac9ebd156f80210af6903",
    "mistralinstruct": "6a146b65a5b96ec8249729bc2db459697175125998d7cbbcc88f7688ecf31dad",
}
_XC_FILES = {m: FileSpec(f"judge-validation/xstest-v2-completions/xstest_v2_completions_{m}.csv", sha,
                         f"{XSTEST_COMPLETIONS}/xstest_v2_completions_{m}.csv")
             for m, sha in _XSTEST_COMPLETIONS.items()}
DATASETS.register("xstest-completions", DatasetSpec(
    name="xstest-completions", kind="judge-validation", splits=("all", *_XC_FILES),
    files={"all": tuple(_XC_FILES.values()), **{m: (f,) for m, f in _XC_FILES.items()}},
    licence="prompts CC BY 4.0; completions under the Meta, Mistral and OpenAI model licences",
    non_commercial=False, loader=L.load_xstest_completions, source="https://github.com/paul-rottger/exaggerated-safety",
    description="XSTest v2: 5 systems x 450 answers, each labelled by two humans (full/partial refusal, "
                "compliance); split = system", sizes={"all": 2250, **dict.fromkeys(_XC_FILES, 450)}))
# The canonical home is the HF dataset JailbreakBench/JBB-Behaviors (config judge_comparison,
# data/judge-comparison.csv), whose file was revised after release. The bytes pinned here are the copy in
# promptfoo-workshop at this commit (Mac Roman encoded), which is also where a download fetches them from, so the
# sha256 check can pass.
JBB_JUDGE = ("https://raw.githubusercontent.com/AnthonyRonning/promptfoo-workshop/"
             "f7ba70256f082d67f857b6a76f962f58acbefc8a/judge-comparison.csv")
_add("jbb-judge-comparison", "judge-validation", {
    "test": FileSpec("judge-validation/jbb-judge-comparison.csv",
                     "95f5b06d7a177fafd9377f2013ebed549c264bfdeee00082d64fcdcb1dc7aa8b", JBB_JUDGE),
}, L.load_jbb_judge_comparison, licence="MIT", source="https://huggingface.co/datasets/JailbreakBench/JBB-Behaviors",
    sizes={"test": 300}, description="JailbreakBench judge_comparison: 300 jailbreak answers, 3 human verdicts + "
    "majority, and HarmBench-cls / GPT-4 / Llama Guard 2 / Llama-3-70B verdicts")

# Files in the shared data layout that no loader reads, pinned so `ptst data check` covers them too.
EXTRA_FILES: tuple[FileSpec, ...] = tuple(FileSpec(p, s) for p, s in [
    ("advbench/harmful_behaviors.csv", "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1"),
    ("alpaca/seed_tasks.jsonl", "7779004fa198fdf27cf70a159363879d8a26c53329e11b436af17b3941875f48"),
    ("arc/ARC-Challenge/ARC-Challenge-Dev.csv", "7cca661024b42cb3aba5f0ac88cdac526e3c9d1097e5c78f94574e2c67441ed6"),
    ("arc/ARC-Challenge/ARC-Challenge-Test.csv", "02d2a8f204df6755c2a9464f914455140dc15b1e189bf932bc62f521e509ee19"),
    ("arc/ARC-Challenge/ARC-Challenge-Train.csv", "361d178277a13d8a6ddc279b0a5bb3d997e00ade75f9bffd4e09701f476896ae"),
    ("arc/ARC-Easy/ARC-Easy-Dev.csv", "3feca4e9933d73fd911754882a7415af38143449640f9a3f70f53171a2d72d67"),
    ("arc/ARC-Easy/ARC-Easy-Test.csv", "a34b48662c4bf713ee6fb7af7786a17880bb7e7e448a1c72c952b4150edee0d7"),
    ("arc/ARC-Easy/ARC-Easy-Train.csv", "6e3b7ab5de9e07718c987fb90319343b0b6a74332f562841029510a53518bea4"),
    ("chatdoctor/format_dataset.csv", "d1fdcdd2c20fb80e446af788aef92d470595aa51c88743af71ce8c0f2a5b9e4b"),
    ("directharm4/README.md", "1c16f966bf60f120d4845404eab557cccf36ef462d98bf27d854c45f7799d86a"),
    ("directharm4/test.jsonl", "7455c5cf136fd232764f8e4f70c2528142397d7fb8028f3b0a95940be094ed8a"),
    ("jailbreakbench/attack-artifacts/GCG/attack-info.json",
     "c0fbdac2310cdf495c1c961775c606871afae14ca2fdc29c2551f97bfa689d8f"),
    ("jailbreakbench/jbb_behaviors_from_gcg_artifacts.csv",
     "def8d14d47a856284d3f96470203d34a9f8f78e641db89a0d151da5489c002e9"),
    ("xstest/xstest_v2_prompts.csv", "e15832490045469ea1d6f6d3ee5674398fae2ed95962f35f5c90c4f557a86509"),
])
