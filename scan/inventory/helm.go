package inventory

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"

	"github.com/ks-clean/ks-clean/internal/kube"
)

// listReleases reads every Helm release record in namespace ("": the whole
// cluster) through Helm's Secrets driver, so records are decoded exactly as
// helm does.
func listReleases(ctx context.Context, c *kube.Clients, namespace string, pageSize int64) ([]*release.Release, error) {
	d := driver.NewSecrets(&pagedSecrets{SecretInterface: c.Kube.CoreV1().Secrets(namespace), ctx: ctx, pageSize: pageSize})
	rels, err := d.List(func(*release.Release) bool { return true })
	if err != nil {
		return nil, err
	}
	sortReleases(rels)
	return rels, nil
}

func sortReleases(rels []*release.Release) {
	sort.Slice(rels, func(i, j int) bool {
		a, b := rels[i], rels[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Version < b.Version
	})
}

// pagedSecrets makes Helm's driver list release records page by page: the
// driver issues one unpaginated List, which on a cluster with many releases
// is one very large response.
type pagedSecrets struct {
	typedcorev1.SecretInterface
	ctx      context.Context
	pageSize int64
}

func (p *pagedSecrets) List(_ context.Context, opts metav1.ListOptions) (*corev1.SecretList, error) {
	out := &corev1.SecretList{}
	lp := kube.Pager(func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		return p.SecretInterface.List(ctx, o)
	})
	lp.PageSize = p.pageSize
	err := lp.EachListItem(p.ctx, opts, func(item runtime.Object) error {
		out.Items = append(out.Items, *item.(*corev1.Secret))
		return nil
	})
	return out, err
}
