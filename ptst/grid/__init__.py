"""The train-template × test-template grid: config, plan, execution with cache and resume, status."""
