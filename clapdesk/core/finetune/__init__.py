"""Teaching the search the producer's tags: training data, prompts, training and the saved versions."""
