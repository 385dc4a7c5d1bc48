"""The DWI side of the vision-language model: data from the artifact simulator, training, evaluation."""
