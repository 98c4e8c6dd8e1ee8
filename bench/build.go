package bench

import (
	"archive/zip"
	"compress/flate"
	"io"
	"os"
	"time"
)

// ZipBootstrap writes the deployment zip of one function the way the CDK
// packages a directory asset (cdk-assets: deflate at level 9, fixed 1980
// timestamps, file mode kept) and returns its size in bytes.
func ZipBootstrap(bin, zipPath string) (int64, error) {
	src, err := os.Open(bin)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return 0, err
	}
	f, err := os.Create(zipPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.SetMode(st.Mode().Perm() | 0o555)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return 0, err
	}
	if _, err := io.Copy(w, src); err != nil {
		return 0, err
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	zst, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return zst.Size(), nil
}
