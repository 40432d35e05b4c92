package cli

import (
	"flag"
	"io"
	"strconv"
	"sync"

	"k8s.io/klog/v2"
)

var (
	filterOnce sync.Once
	klogOnce   sync.Once
	klogFlags  *flag.FlagSet
)

// logLevel sets client-go's log level as kubectl's -v does: at 6 each API
// request is logged with its timing, at 7 its headers (Authorization
// masked by client-go), at 9 as a curl command line. Request and response
// bodies, which client-go logs from 8 on, are never shown (redactBodies).
// Logs go to w (stderr), never to stdout, so -o json stays a document.
func logLevel(level int, w io.Writer) {
	// At every level, whoever else sets klog's verbosity.
	filterOnce.Do(func() { klog.SetLogFilter(redactBodies{}) })
	if level < 2 && klogFlags == nil {
		return // klog as it is by default: level 0, to stderr
	}
	klogOnce.Do(func() {
		klogFlags = flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(klogFlags)
		_ = klogFlags.Set("logtostderr", "false")
		_ = klogFlags.Set("alsologtostderr", "false")
		_ = klogFlags.Set("stderrthreshold", "FATAL")
	})
	if level < 2 {
		// klog is process-wide: a level set by an earlier run in this
		// process (tests, or another caller of run) must not carry over.
		level = 0
	}
	_ = klogFlags.Set("v", strconv.Itoa(level))
	klog.SetOutput(w)
}

// redactBodies keeps every body out of the logs. client-go logs request and
// response bodies at -v=8 and above (rest.Request's logBody, as structured
// messages with a "body" value): Secrets, Helm release records, KubeSphere
// Cluster records with kubeconfigs, ConfigMaps holding users' kubeconfigs,
// and any custom resource a user keeps a password in, since a scan lists
// every type. Telling a harmless body from a secret one would mean parsing
// bodies that are often truncated (at 8 and 9) or protobuf, and trusting
// field names of types ks-clean does not know; dropping every body is the
// one rule that cannot leak. A klog filter, not a transport wrapper, because
// client-go logs bodies above the transport, for every client it builds
// (ks-clean's, Helm's, and those for cluster records). What stays at -v=9 is
// what a debugging session needs: the curl command line of each request,
// its headers with credentials masked, status and timing.
type redactBodies struct{}

// bodyRedacted replaces a body in the logs.
const bodyRedacted = "<not logged: request and response bodies may hold Secrets or kubeconfigs>"

func (redactBodies) Filter(args []any) []any { return args }

func (redactBodies) FilterF(format string, args []any) (string, []any) { return format, args }

func (redactBodies) FilterS(msg string, kv []any) (string, []any) {
	var out []any
	for i := 0; i+1 < len(kv); i += 2 {
		if k, _ := kv[i].(string); k == "body" {
			if out == nil {
				out = append([]any(nil), kv...)
			}
			out[i+1] = bodyRedacted
		}
	}
	if out == nil {
		return msg, kv
	}
	return msg, out
}
