package fakemodel

// PDFInfo exposes the PDF scan to the external tests.
func PDFInfo(b []byte) (pages int, encrypted bool, err error) { return pdfInfo(b) }
