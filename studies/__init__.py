"""ae-lab MNIST optimizer study: python -m studies."""
