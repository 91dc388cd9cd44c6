"""Generation stage: render prompts under a test template and produce answers with a backend."""
