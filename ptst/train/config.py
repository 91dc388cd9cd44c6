"""The training config lives in `ptst.specs.train` (below the stages); this name is kept for callers' imports."""

from ptst.specs.train import (
                              OPERATIONAL_KEYS,
                              PRECISIONS,
                              SCHEDULES,
                              LoraConfig,
                              MixSpec,
                              TrainConfig,
                              identity,
                              load_train_config,
                              parse_mix,
                              to_yaml_dict,
                              to_yaml_dict_mix,
)

__all__ = ["OPERATIONAL_KEYS", "PRECISIONS", "SCHEDULES", "LoraConfig", "MixSpec", "TrainConfig", "identity",
           "load_train_config", "parse_mix", "to_yaml_dict", "to_yaml_dict_mix"]
