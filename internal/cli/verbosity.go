package cli

import (
	"flag"
	"io"
	"strconv"
	"sync"

	"k8s.io/klog/v2"
)

var (
	klogOnce  sync.Once
	klogFlags *flag.FlagSet
)

// logLevel sets client-go's log level as kubectl's -v does: at 6 each API
// request is logged with its timing, at 7 its headers, at 8 the response
// bodies (client-go decides what each level shows). Logs go to w (stderr),
// never to stdout, so -o json stays a document.
func logLevel(level int, w io.Writer) {
	if level < 2 {
		return
	}
	klogOnce.Do(func() {
		klogFlags = flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(klogFlags)
		_ = klogFlags.Set("logtostderr", "false")
		_ = klogFlags.Set("alsologtostderr", "false")
		_ = klogFlags.Set("stderrthreshold", "FATAL")
	})
	_ = klogFlags.Set("v", strconv.Itoa(level))
	klog.SetOutput(w)
}
