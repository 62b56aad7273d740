"""ae-lab report: python -m reports builds the PDF from the records."""
