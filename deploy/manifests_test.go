package deploy

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/maasgate/maasgate/internal/config"
)

// manifestDirs are the directories whose YAML files are decoded and checked,
// with their subdirectories.
var manifestDirs = []string{"kubernetes", "openshift"}

// gatewayContainerName names the gateway's container in a Deployment.
const gatewayContainerName = "maasgate"

// doc is one YAML document of a manifest file, decoded into its API type.
type doc struct {
	file string // relative to deploy/, e.g. "kubernetes/deployment.yaml"
	n    int    // 1-based position of the document in the file
	obj  any    // *appsv1.Deployment, *corev1.Service, ..., *route
}

func (d doc) String() string { return fmt.Sprintf("%s (document %d)", d.file, d.n) }

// manifests are every document of every file under manifestDirs.
type manifests struct{ docs []doc }

// where names the file and document obj was decoded from.
func (m *manifests) where(obj any) string {
	for _, d := range m.docs {
		if d.obj == obj {
			return d.String()
		}
	}
	return "(unknown document)"
}

// objects returns the documents of type T, in file order.
func objects[T any](m *manifests) []T {
	var out []T
	for _, d := range m.docs {
		if o, ok := d.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// named returns the object of type T with the given name, or nil.
func named[T interface{ GetName() string }](m *manifests, name string) T {
	var zero T
	for _, o := range objects[T](m) {
		if o.GetName() == name {
			return o
		}
	}
	return zero
}

// route mirrors the fields of OpenShift's route.openshift.io/v1 Route that
// a Route here may use (k8s.io/api has no Route type). Decoding is strict,
// so a field that is not here fails the test: add it here, with its real
// name, when a manifest needs it.
type route struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              routeSpec `json:"spec"`
}

type routeSpec struct {
	Host           string      `json:"host,omitempty"`
	Path           string      `json:"path,omitempty"`
	To             routeTarget `json:"to"`
	Port           *routePort  `json:"port,omitempty"`
	TLS            *routeTLS   `json:"tls,omitempty"`
	WildcardPolicy string      `json:"wildcardPolicy,omitempty"`
}

type routeTarget struct {
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Weight *int32 `json:"weight,omitempty"`
}

type routePort struct {
	TargetPort intstr.IntOrString `json:"targetPort"`
}

type routeTLS struct {
	Termination                   string `json:"termination"`
	Certificate                   string `json:"certificate,omitempty"`
	Key                           string `json:"key,omitempty"`
	CACertificate                 string `json:"caCertificate,omitempty"`
	DestinationCACertificate      string `json:"destinationCACertificate,omitempty"`
	InsecureEdgeTerminationPolicy string `json:"insecureEdgeTerminationPolicy,omitempty"`
}

// newObject returns an empty object of the API type for apiVersion and kind.
func newObject(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "v1 Namespace":
		return &corev1.Namespace{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 Service":
		return &corev1.Service{}, true
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, true
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	case "route.openshift.io/v1 Route":
		return &route{}, true
	}
	return nil, false
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// loadManifests reads, splits and strictly decodes every YAML file under
// manifestDirs: an unknown kind, an unknown or duplicated field, or a value
// of the wrong type fails the test.
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{}
	files := 0
	for _, dir := range manifestDirs {
		err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			switch filepath.Ext(p) {
			case ".yaml", ".yml":
			default:
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			file := filepath.ToSlash(p)
			found := 0 // documents with an object, decoded or not
			for i, part := range docSeparator.Split(string(data), -1) {
				d := doc{file: file, n: i + 1}
				js, err := yaml.YAMLToJSON([]byte(part))
				if err != nil {
					t.Errorf("%s: invalid YAML: %v", d, err)
					continue
				}
				if string(bytes.TrimSpace(js)) == "null" {
					continue // only comments
				}
				var tm metav1.TypeMeta
				if err := yaml.Unmarshal([]byte(part), &tm); err != nil {
					t.Errorf("%s: %v", d, err)
					continue
				}
				found++
				obj, ok := newObject(tm.APIVersion, tm.Kind)
				if !ok {
					t.Errorf("%s: unknown apiVersion %q kind %q: add its API type to newObject", d, tm.APIVersion, tm.Kind)
					continue
				}
				if err := yaml.UnmarshalStrict([]byte(part), obj); err != nil {
					t.Errorf("%s: %s %s does not decode strictly: %v", d, tm.APIVersion, tm.Kind, err)
					continue
				}
				d.obj = obj
				m.docs = append(m.docs, d)
			}
			if found == 0 {
				t.Errorf("%s: no Kubernetes object in it", file)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files == 0 {
		t.Fatalf("no YAML files under %v", manifestDirs)
	}
	return m
}

// gatewayDeployment returns the one Deployment that runs the gateway (a
// container named gatewayContainerName) and that container.
func gatewayDeployment(t *testing.T, m *manifests) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	var dep *appsv1.Deployment
	var ctr *corev1.Container
	for _, d := range objects[*appsv1.Deployment](m) {
		for i := range d.Spec.Template.Spec.Containers {
			if c := &d.Spec.Template.Spec.Containers[i]; c.Name == gatewayContainerName {
				if dep != nil {
					t.Fatalf("two gateway Deployments: %s and %s", m.where(dep), m.where(d))
				}
				dep, ctr = d, c
			}
		}
	}
	if dep == nil {
		t.Fatalf("no Deployment has a container named %q", gatewayContainerName)
	}
	return dep, ctr
}

// ---- what the gateway's source says ----------------------------------------

// gatewayFacts are facts about `maasgate serve` read from its source, so
// the manifests are checked against the code rather than against a copy of
// it: flag names, defaults and environment variables (serve.go), the paths
// served without the master key (gateway.go), and the variables the command
// reads directly.
type gatewayFacts struct {
	flagDefault map[string]string   // flag name -> its default, as Go source
	flagEnv     map[string][]string // flag name -> environment variables, in precedence order
	publicGET   []string            // GET paths on the mux outside authentication
	directEnv   []string            // variables read by name, e.g. lookupEnv("NAME")
}

var (
	flagDefRE   = regexp.MustCompile(`fs\.(?:String|Int|Int64|Uint|Float64|Duration|Bool)(?:Var)?\((?:&[\w.]+,\s*)?"([a-z][a-z0-9-]*)",\s*([^,]+),`)
	bindEnvRE   = regexp.MustCompile(`fs\.bindEnv\("([a-z][a-z0-9-]*)"((?:,\s*"[A-Z][A-Z0-9_]*")+)\)`)
	quotedRE    = regexp.MustCompile(`"([^"]*)"`)
	publicRE    = regexp.MustCompile(`(?m)^\s*mux\.Handle(?:Func)?\("GET (/[^" ]*)"`)
	authWrapRE  = regexp.MustCompile(`(?m)^\s*mux\.Handle\("/", authn\.Wrap\(api\)\)`)
	lookupEnvRE = regexp.MustCompile(`\b(?:lookupEnv|LookupEnv|Getenv|getenv|env)\("([A-Z][A-Z0-9_]*)"\)`)
)

const cmdDir = "../cmd/maasgate"

func readGatewayFacts(t *testing.T) *gatewayFacts {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(cmdDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	g := &gatewayFacts{flagDefault: map[string]string{}, flagEnv: map[string][]string{}}
	serve := read("serve.go")
	// runServe's flags only: the file also holds runCheck's.
	if i := strings.Index(serve, "func runCheck("); i > 0 {
		serve = serve[:i]
	}
	for _, s := range flagDefRE.FindAllStringSubmatch(serve, -1) {
		g.flagDefault[s[1]] = strings.TrimSpace(s[2])
	}
	for _, s := range bindEnvRE.FindAllStringSubmatch(serve, -1) {
		for _, q := range quotedRE.FindAllStringSubmatch(s[2], -1) {
			g.flagEnv[s[1]] = append(g.flagEnv[s[1]], q[1])
		}
	}
	for _, want := range []string{"config", "port", "host", "shutdown-grace", "database-url"} {
		if _, ok := g.flagDefault[want]; !ok {
			t.Fatalf("serve.go: flag --%s not found (flags read: %v); has the flag code changed shape?", want, g.flagDefault)
		}
	}
	gw := read("gateway.go")
	for _, s := range publicRE.FindAllStringSubmatch(gw, -1) {
		g.publicGET = append(g.publicGET, s[1])
	}
	if len(g.publicGET) == 0 || !authWrapRE.MatchString(gw) {
		t.Fatalf("gateway.go: cannot tell which paths are served without the master key (public GET paths read: %v)", g.publicGET)
	}
	entries, err := os.ReadDir(cmdDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			for _, s := range lookupEnvRE.FindAllStringSubmatch(read(n), -1) {
				g.directEnv = append(g.directEnv, s[1])
			}
		}
	}
	return g
}

var goDurationRE = regexp.MustCompile(`^(?:(\d+)\s*\*\s*)?time\.(Millisecond|Second|Minute|Hour)$`)

// defaultDuration evaluates a duration flag's default as written in Go,
// e.g. 30*time.Second.
func defaultDuration(expr string) (time.Duration, error) {
	s := goDurationRE.FindStringSubmatch(expr)
	if s == nil {
		return 0, fmt.Errorf("cannot evaluate the Go expression %q", expr)
	}
	n := int64(1)
	if s[1] != "" {
		n, _ = strconv.ParseInt(s[1], 10, 64)
	}
	unit := map[string]time.Duration{"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}[s[2]]
	return time.Duration(n) * unit, nil
}

// serveArgs checks a container's args as `maasgate serve` would parse
// them, and returns the flags given.
func serveArgs(g *gatewayFacts, args []string) (map[string]string, error) {
	if len(args) == 0 || args[0] != "serve" {
		return nil, fmt.Errorf("args %q: want the serve command first", args)
	}
	flags := map[string]string{}
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("args %q: unexpected argument %q (serve takes flags only)", args, a)
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := g.flagDefault[name]; !ok {
			return nil, fmt.Errorf("args %q: --%s is not a flag of maasgate serve (cmd/maasgate/serve.go)", args, name)
		}
		if !hasVal {
			if i+1 == len(args) {
				return nil, fmt.Errorf("args %q: --%s needs a value", args, name)
			}
			i++
			val = args[i]
		}
		if _, dup := flags[name]; dup {
			return nil, fmt.Errorf("args %q: --%s given twice", args, name)
		}
		flags[name] = val
	}
	return flags, nil
}

// effectiveFlag returns the value `maasgate serve` uses for a flag: the
// command line, else the first of its environment variables that is set and
// not empty, else ok=false (the default applies).
func effectiveFlag(g *gatewayFacts, flags, env map[string]string, name string) (val, from string, ok bool) {
	if v, ok := flags[name]; ok {
		return v, "--" + name, true
	}
	for _, e := range g.flagEnv[name] {
		if v := env[e]; v != "" {
			return v, e, true
		}
	}
	return "", "", false
}

// ---- the pod as Kubernetes would run it ----------------------------------

// containerEnv returns the environment of a container as Kubernetes would
// set it, with the (placeholder) values of the Secrets and ConfigMaps in
// the manifests. A reference to a missing Secret, ConfigMap or key fails the
// test.
func containerEnv(t *testing.T, m *manifests, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	secretKey := func(name, key string) (string, bool) {
		s := named[*corev1.Secret](m, name)
		if s == nil {
			return "", false
		}
		if v, ok := s.StringData[key]; ok {
			return v, true
		}
		v, ok := s.Data[key]
		return string(v), ok
	}
	configMapKey := func(name, key string) (string, bool) {
		cm := named[*corev1.ConfigMap](m, name)
		if cm == nil {
			return "", false
		}
		v, ok := cm.Data[key]
		return v, ok
	}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.SecretRef != nil:
			s := named[*corev1.Secret](m, ef.SecretRef.Name)
			if s == nil {
				t.Errorf("container %s: envFrom Secret %q is not in the manifests", c.Name, ef.SecretRef.Name)
				continue
			}
			for k, v := range s.StringData {
				env[ef.Prefix+k] = v
			}
			for k, v := range s.Data {
				env[ef.Prefix+k] = string(v)
			}
		case ef.ConfigMapRef != nil:
			cm := named[*corev1.ConfigMap](m, ef.ConfigMapRef.Name)
			if cm == nil {
				t.Errorf("container %s: envFrom ConfigMap %q is not in the manifests", c.Name, ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		if errs := validation.IsEnvVarName(e.Name); len(errs) > 0 {
			t.Errorf("container %s: env %q: %v", c.Name, e.Name, errs)
		}
		if n := countEnv(c.Env, e.Name); n > 1 {
			t.Errorf("container %s: env %s set %d times", c.Name, e.Name, n)
		}
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = e.Value
		case vf.SecretKeyRef != nil:
			v, ok := secretKey(vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
			if !ok {
				t.Errorf("container %s: env %s: Secret %q has no key %q in the manifests", c.Name, e.Name, vf.SecretKeyRef.Name, vf.SecretKeyRef.Key)
			}
			if vf.SecretKeyRef.Optional != nil && *vf.SecretKeyRef.Optional {
				t.Errorf("container %s: env %s: optional secret reference; a missing secret must stop the pod, not start it without", c.Name, e.Name)
			}
			env[e.Name] = v
		case vf.ConfigMapKeyRef != nil:
			v, ok := configMapKey(vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
			if !ok {
				t.Errorf("container %s: env %s: ConfigMap %q has no key %q in the manifests", c.Name, e.Name, vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key)
			}
			env[e.Name] = v
		default:
			env[e.Name] = "" // fieldRef, resourceFieldRef: known only in the cluster
		}
	}
	return env
}

func countEnv(env []corev1.EnvVar, name string) int {
	n := 0
	for _, e := range env {
		if e.Name == name {
			n++
		}
	}
	return n
}

// containerPort resolves a probe's or Service's port (a name or a number)
// to one of the container's declared ports.
func containerPort(c *corev1.Container, p intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, cp := range c.Ports {
		if p.Type == intstr.String && cp.Name == p.StrVal || p.Type == intstr.Int && cp.ContainerPort == p.IntVal {
			return cp, true
		}
	}
	return corev1.ContainerPort{}, false
}

// probePort returns the port a probe targets, and a description of it.
func probePort(p *corev1.Probe) (intstr.IntOrString, string, bool) {
	switch {
	case p.HTTPGet != nil:
		return p.HTTPGet.Port, "httpGet " + p.HTTPGet.Path, true
	case p.TCPSocket != nil:
		return p.TCPSocket.Port, "tcpSocket", true
	case p.GRPC != nil:
		return intstr.FromInt32(p.GRPC.Port), "grpc", true
	}
	return intstr.IntOrString{}, "", false
}

// podSelected reports whether selector matches the Deployment's pods.
func podSelected(t *testing.T, sel *metav1.LabelSelector, d *appsv1.Deployment) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("invalid label selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(d.Spec.Template.Labels))
}

// ---- tests -----------------------------------------------------------------

// TestManifestsDecodeStrictly decodes every manifest into its Kubernetes API
// type and checks what the API server would check first: names, and that
// the expected objects are all there.
func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	seen := map[string]string{}
	for _, d := range m.docs {
		meta, ok := d.obj.(metav1.Object)
		if !ok {
			t.Fatalf("%s: %T has no metadata", d, d.obj)
		}
		kind := fmt.Sprintf("%T", d.obj)
		if errs := validation.IsDNS1123Subdomain(meta.GetName()); len(errs) > 0 {
			t.Errorf("%s: name %q: %v", d, meta.GetName(), errs)
		}
		if _, ok := d.obj.(*corev1.Service); ok {
			if errs := validation.IsDNS1035Label(meta.GetName()); len(errs) > 0 {
				t.Errorf("%s: Service name %q: %v", d, meta.GetName(), errs)
			}
		}
		// No namespace in the files: `kubectl -n NS apply -f` places them,
		// and the Route, Services and env refer to each other by short name.
		if meta.GetNamespace() != "" {
			t.Errorf("%s: metadata.namespace %q: leave it out, apply with -n", d, meta.GetNamespace())
		}
		key := kind + " " + meta.GetName()
		if prev, dup := seen[key]; dup {
			t.Errorf("%s: %s is also defined in %s", d, key, prev)
		}
		seen[key] = d.String()
	}
	for _, want := range []string{
		"*v1.Deployment maasgate", "*v1.Service maasgate", "*v1.Secret maasgate",
		"*v1.ConfigMap maasgate-config", "*v1.PodDisruptionBudget maasgate", "*deploy.route maasgate",
	} {
		if _, ok := seen[want]; !ok {
			t.Errorf("missing %s (have %v)", want, slices.Sorted(maps.Keys(seen)))
		}
	}
}

// TestPodSecurity checks every Deployment's pods: never root, read-only root
// filesystem, no privilege escalation, no capabilities, the runtime's
// seccomp profile, resource requests and a memory limit, no service links.
func TestPodSecurity(t *testing.T) {
	m := loadManifests(t)
	for _, d := range objects[*appsv1.Deployment](m) {
		where := m.where(d)
		ps := d.Spec.Template.Spec
		if ps.EnableServiceLinks == nil || *ps.EnableServiceLinks {
			t.Errorf("%s: set enableServiceLinks: false (Kubernetes would set <SERVICE>_PORT=tcp://... variables, and MAASGATE_PORT is the gateway's --port)", where)
		}
		if ps.HostNetwork || ps.HostPID || ps.HostIPC {
			t.Errorf("%s: host namespaces are not needed", where)
		}
		podNonRoot := ps.SecurityContext != nil && ps.SecurityContext.RunAsNonRoot != nil && *ps.SecurityContext.RunAsNonRoot
		podSeccomp := ps.SecurityContext != nil && ps.SecurityContext.SeccompProfile != nil &&
			ps.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
		if ps.SecurityContext != nil && ps.SecurityContext.RunAsUser != nil && *ps.SecurityContext.RunAsUser == 0 {
			t.Errorf("%s: pod runAsUser 0", where)
		}
		for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: container %s: no securityContext", where, c.Name)
				continue
			}
			if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
				t.Errorf("%s: container %s: runAsNonRoot is not true", where, c.Name)
			}
			if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
				t.Errorf("%s: container %s: runAsNonRoot: false", where, c.Name)
			}
			if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
				t.Errorf("%s: container %s: runAsUser 0", where, c.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: container %s: readOnlyRootFilesystem is not true", where, c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: container %s: allowPrivilegeEscalation is not false", where, c.Name)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: container %s: privileged", where, c.Name)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: container %s: capabilities must drop ALL and add none", where, c.Name)
			}
			if !podSeccomp && (sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault) {
				t.Errorf("%s: container %s: seccomp profile is not RuntimeDefault", where, c.Name)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s: container %s: no cpu or memory request", where, c.Name)
			}
			if c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: container %s: no memory limit", where, c.Name)
			} else if c.Resources.Limits.Memory().Cmp(*c.Resources.Requests.Memory()) < 0 {
				t.Errorf("%s: container %s: memory limit below the request", where, c.Name)
			}
		}
	}
}

// TestProbesAndPorts checks that every probe of every Deployment targets a
// declared container port, and that each Deployment selects its own pods.
func TestProbesAndPorts(t *testing.T) {
	m := loadManifests(t)
	for _, d := range objects[*appsv1.Deployment](m) {
		where := m.where(d)
		if !podSelected(t, d.Spec.Selector, d) {
			t.Errorf("%s: spec.selector does not match the pod template's labels", where)
		}
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			names := map[string]bool{}
			for _, p := range c.Ports {
				if errs := validation.IsValidPortNum(int(p.ContainerPort)); len(errs) > 0 {
					t.Errorf("%s: container %s: port %d: %v", where, c.Name, p.ContainerPort, errs)
				}
				if p.Name != "" {
					if errs := validation.IsValidPortName(p.Name); len(errs) > 0 {
						t.Errorf("%s: container %s: port name %q: %v", where, c.Name, p.Name, errs)
					}
					if names[p.Name] {
						t.Errorf("%s: container %s: port name %q twice", where, c.Name, p.Name)
					}
					names[p.Name] = true
				}
			}
			probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
			for kind, p := range probes {
				if p == nil {
					if kind != "startup" {
						t.Errorf("%s: container %s: no %s probe", where, c.Name, kind)
					}
					continue
				}
				port, what, ok := probePort(p)
				if !ok {
					t.Errorf("%s: container %s: %s probe: want httpGet, tcpSocket or grpc", where, c.Name, kind)
					continue
				}
				if _, ok := containerPort(c, port); !ok {
					t.Errorf("%s: container %s: %s probe (%s) port %s is not a declared container port", where, c.Name, kind, what, port.String())
				}
			}
		}
	}
}

// TestGatewayDeployment checks the gateway's Deployment against the
// gateway's code: replicas, args, port, probes, environment variables,
// shutdown timing, spreading.
func TestGatewayDeployment(t *testing.T) {
	m := loadManifests(t)
	g := readGatewayFacts(t)
	dep, c := gatewayDeployment(t, m)
	where := m.where(dep)
	ps := dep.Spec.Template.Spec

	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		t.Errorf("%s: replicas must be set and at least 2", where)
	}

	// Args: the serve command with real flags only.
	flags, err := serveArgs(g, c.Args)
	if err != nil {
		t.Fatalf("%s: %v", where, err)
	}
	if len(c.Command) > 0 {
		t.Errorf("%s: command %q overrides the image's ENTRYPOINT; set args only", where, c.Command)
	}
	if got := slices.Sorted(maps.Keys(flags)); !slices.Equal(got, []string{"config"}) {
		t.Errorf("%s: args use flags %v; keep them to --config and set the rest through environment variables", where, got)
	}

	env := containerEnv(t, m, c)

	// Environment: every variable is one the gateway (or its config file,
	// or the Go runtime) reads.
	known := map[string]string{}
	for flag, vars := range g.flagEnv {
		for _, v := range vars {
			known[v] = "--" + flag
		}
	}
	for _, v := range g.directEnv {
		known[v] = "read by cmd/maasgate"
	}
	for _, v := range []string{"GOMEMLIMIT", "GOMAXPROCS", "GOGC", "GODEBUG"} {
		known[v] = "Go runtime"
	}
	cfgText := gatewayConfigText(t, m, dep, c, flags)
	for _, s := range regexp.MustCompile(`os\.environ/([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(cfgText, -1) {
		known[s[1]] = "config.yaml"
	}
	for _, e := range c.Env {
		if _, ok := known[e.Name]; !ok && !strings.HasPrefix(e.Name, "OTEL_") {
			t.Errorf("%s: env %s is read by neither the gateway, config.yaml nor the Go runtime", where, e.Name)
		}
	}

	// The port: what the gateway listens on is what the pod declares.
	port, from, set := effectiveFlag(g, flags, env, "port")
	if !set {
		port, from = mustUnquote(t, g.flagDefault["port"]), "the default of --port"
	}
	portNum, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("%s: port %q (from %s) is not a number", where, port, from)
	}
	if portNum != 4000 {
		t.Errorf("%s: the gateway listens on %d (from %s); the manifests and docs assume 4000", where, portNum, from)
	}
	httpPort, ok := containerPort(c, intstr.FromString("http"))
	if !ok {
		t.Fatalf("%s: no container port named http", where)
	}
	if int(httpPort.ContainerPort) != portNum {
		t.Errorf("%s: container port http is %d, but the gateway listens on %d (from %s)", where, httpPort.ContainerPort, portNum, from)
	}
	if host, from, set := effectiveFlag(g, flags, env, "host"); set && host != "0.0.0.0" && host != "::" && host != "" {
		t.Errorf("%s: the gateway listens on host %q (from %s): probes and the Service reach the pod's IP, so listen on all addresses", where, host, from)
	}

	// Probes: httpGet on a path the gateway serves without the master key,
	// on the port it listens on.
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
	for kind, p := range probes {
		if p == nil {
			t.Errorf("%s: no %s probe", where, kind)
			continue
		}
		if p.HTTPGet == nil {
			t.Errorf("%s: %s probe: want httpGet", where, kind)
			continue
		}
		h := p.HTTPGet
		if !slices.Contains(g.publicGET, h.Path) || !strings.HasPrefix(h.Path, "/health/") {
			t.Errorf("%s: %s probe path %q is not a health path the gateway serves without the master key (those are %v; see cmd/maasgate/gateway.go)", where, kind, h.Path, g.publicGET)
		}
		if cp, ok := containerPort(c, h.Port); !ok || int(cp.ContainerPort) != portNum {
			t.Errorf("%s: %s probe port %s is not the port the gateway listens on (%d)", where, kind, h.Port.String(), portNum)
		}
		if h.Scheme != "" && h.Scheme != corev1.URISchemeHTTP {
			t.Errorf("%s: %s probe scheme %s: the gateway serves plain HTTP", where, kind, h.Scheme)
		}
		if len(h.HTTPHeaders) > 0 {
			t.Errorf("%s: %s probe sends headers: a probe cannot read the master key from a Secret, so do not put it in the manifest", where, kind)
		}
	}

	// Shutdown: the pod is killed only after the preStop hook and the
	// gateway's graceful shutdown have had their time.
	grace := 30 * time.Second // Kubernetes' default terminationGracePeriodSeconds
	if ps.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*ps.TerminationGracePeriodSeconds) * time.Second
	}
	var shutdown time.Duration
	if v, from, set := effectiveFlag(g, flags, env, "shutdown-grace"); set {
		if shutdown, err = time.ParseDuration(v); err != nil {
			t.Fatalf("%s: %s: %v", where, from, err)
		}
	} else if shutdown, err = defaultDuration(g.flagDefault["shutdown-grace"]); err != nil {
		t.Fatalf("serve.go: default of --shutdown-grace: %v", err)
	}
	var preStop time.Duration
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if s := c.Lifecycle.PreStop.Sleep; s != nil {
			preStop = time.Duration(s.Seconds) * time.Second
		} else {
			t.Errorf("%s: preStop: the image has no shell; use the sleep action", where)
		}
	}
	if grace <= preStop+shutdown {
		t.Errorf("%s: terminationGracePeriodSeconds %v is not above preStop %v + shutdown grace %v", where, grace, preStop, shutdown)
	}

	// GOMEMLIMIT below the container's memory limit.
	if v, ok := env["GOMEMLIMIT"]; ok {
		limit, err := goMemLimit(v)
		if err != nil {
			t.Errorf("%s: GOMEMLIMIT: %v", where, err)
		} else if max := c.Resources.Limits.Memory().Value(); max == 0 || limit >= max {
			t.Errorf("%s: GOMEMLIMIT %s is not below the memory limit %s", where, v, c.Resources.Limits.Memory())
		}
	}

	// Replicas spread over nodes.
	spread := false
	for _, tc := range ps.TopologySpreadConstraints {
		if tc.TopologyKey == "kubernetes.io/hostname" && podSelected(t, tc.LabelSelector, dep) {
			spread = true
		}
		if tc.LabelSelector == nil || !podSelected(t, tc.LabelSelector, dep) {
			t.Errorf("%s: topology spread constraint on %s does not select the gateway's pods", where, tc.TopologyKey)
		}
	}
	if a := ps.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if term.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && podSelected(t, term.PodAffinityTerm.LabelSelector, dep) {
				spread = true
			}
		}
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if term.TopologyKey == "kubernetes.io/hostname" && podSelected(t, term.LabelSelector, dep) {
				spread = true
			}
		}
	}
	if !spread {
		t.Errorf("%s: replicas are not spread over nodes (topologySpreadConstraints or podAntiAffinity on kubernetes.io/hostname)", where)
	}

	// A disruption budget that lets a drain proceed but not empty the
	// gateway.
	pdbs := 0
	for _, p := range objects[*policyv1.PodDisruptionBudget](m) {
		if !podSelected(t, p.Spec.Selector, dep) {
			continue
		}
		pdbs++
		switch {
		case p.Spec.MaxUnavailable != nil:
			if p.Spec.MaxUnavailable.Type != intstr.Int || p.Spec.MaxUnavailable.IntVal < 1 || dep.Spec.Replicas != nil && p.Spec.MaxUnavailable.IntVal >= *dep.Spec.Replicas {
				t.Errorf("%s: maxUnavailable %s: want a number from 1 to replicas-1", m.where(p), p.Spec.MaxUnavailable.String())
			}
		case p.Spec.MinAvailable != nil:
			if p.Spec.MinAvailable.Type != intstr.Int || p.Spec.MinAvailable.IntVal < 1 || dep.Spec.Replicas != nil && p.Spec.MinAvailable.IntVal >= *dep.Spec.Replicas {
				t.Errorf("%s: minAvailable %s: want a number from 1 to replicas-1, or a drain never finishes", m.where(p), p.Spec.MinAvailable.String())
			}
		default:
			t.Errorf("%s: neither minAvailable nor maxUnavailable", m.where(p))
		}
	}
	if pdbs != 1 {
		t.Errorf("%s: %d PodDisruptionBudgets select the gateway's pods; want 1", where, pdbs)
	}
}

var goMemLimitRE = regexp.MustCompile(`^(\d+)(B|KiB|MiB|GiB|TiB)?$`)

// goMemLimit parses GOMEMLIMIT as the Go runtime does (a byte count with an
// optional binary unit).
func goMemLimit(s string) (int64, error) {
	m := goMemLimitRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q: want a number of bytes with an optional B, KiB, MiB, GiB or TiB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	shift := map[string]uint{"": 0, "B": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40}[m[2]]
	return n << shift, nil
}

func mustUnquote(t *testing.T, s string) string {
	t.Helper()
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("serve.go: default %s is not a string literal", s)
	}
	return u
}

// gatewayPod loads the manifests and returns them with the gateway's
// Deployment and container, the flags its args set and the config.yaml it
// reads.
func gatewayPod(t *testing.T) (m *manifests, dep *appsv1.Deployment, c *corev1.Container, flags map[string]string, config string) {
	t.Helper()
	m = loadManifests(t)
	dep, c = gatewayDeployment(t, m)
	flags, err := serveArgs(readGatewayFacts(t), c.Args)
	if err != nil {
		t.Fatal(err)
	}
	return m, dep, c, flags, gatewayConfigText(t, m, dep, c, flags)
}

// gatewayConfigText returns the config.yaml the gateway container reads: the
// --config path must be a file of a ConfigMap volume mounted in it.
func gatewayConfigText(t *testing.T, m *manifests, dep *appsv1.Deployment, c *corev1.Container, flags map[string]string) string {
	t.Helper()
	where := m.where(dep)
	cfgPath := flags["config"]
	if cfgPath == "" {
		t.Fatalf("%s: no --config in args", where)
	}
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(cfgPath, strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !ok {
			continue
		}
		if vm.SubPath != "" {
			t.Fatalf("%s: the config volume is mounted with subPath, which never sees ConfigMap updates", where)
		}
		for _, v := range dep.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name {
				continue
			}
			if v.ConfigMap == nil {
				t.Fatalf("%s: --config %s is on volume %s, which is not a ConfigMap", where, cfgPath, v.Name)
			}
			key := rel
			if len(v.ConfigMap.Items) > 0 {
				key = ""
				for _, it := range v.ConfigMap.Items {
					if path.Clean(it.Path) == rel {
						key = it.Key
					}
				}
			}
			cm := named[*corev1.ConfigMap](m, v.ConfigMap.Name)
			if cm == nil {
				t.Fatalf("%s: ConfigMap %q is not in the manifests", where, v.ConfigMap.Name)
			}
			text, ok := cm.Data[key]
			if !ok || key == "" {
				t.Fatalf("%s: --config %s: ConfigMap %q has no such file", where, cfgPath, cm.Name)
			}
			return text
		}
		t.Fatalf("%s: volume %s is mounted but not defined", where, vm.Name)
	}
	t.Fatalf("%s: --config %s is on no mounted volume", where, cfgPath)
	return ""
}

// TestGatewayConfig runs the ConfigMap's config.yaml through the gateway's
// own config loader, with the environment the Deployment gives the
// container (placeholder secrets), and checks what several replicas need.
func TestGatewayConfig(t *testing.T) {
	m, dep, c, flags, text := gatewayPod(t)
	g := readGatewayFacts(t)
	env := containerEnv(t, m, c)
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, warnings, err := config.Parse("kubernetes/configmap.yaml:config.yaml", []byte(text), getenv)
	for _, w := range warnings {
		t.Errorf("config warning: %s", w)
	}
	if err != nil {
		t.Fatalf("the ConfigMap's config.yaml does not load:\n%v", err)
	}
	if cfg.General.MasterKey == "" {
		t.Error("config.yaml: no general_settings.master_key: the gateway would serve without authentication")
	}
	if ref := "os.environ/LITELLM_MASTER_KEY"; !strings.Contains(text, "master_key: "+ref) {
		t.Errorf("config.yaml: master_key should be %s (from the Secret), never written in the file", ref)
	}
	groups := map[string]int{}
	for _, md := range cfg.Models {
		groups[md.Name]++
	}
	if len(cfg.Models) < 2 || len(groups) != 1 {
		t.Errorf("config.yaml: want the example's two deployments of one model group, got %v", groups)
	}

	// Several replicas need a shared database and shared routing state.
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas < 2 {
		return
	}
	dbURL, _, set := effectiveFlag(g, flags, env, "database-url")
	if !set {
		dbURL = cfg.General.DatabaseURL
	}
	if !strings.HasPrefix(dbURL, "postgres://") && !strings.HasPrefix(dbURL, "postgresql://") {
		t.Errorf("%d replicas with database %q: each replica would keep its own SQLite file; set DATABASE_URL to PostgreSQL", *dep.Spec.Replicas, dbURL)
	}
	if cfg.Router.RedisHost == "" && cfg.Router.RedisURL == "" && env["REDIS_HOST"] == "" && env["REDIS_URL"] == "" {
		t.Errorf("%d replicas without Redis: each replica would keep its own routing state", *dep.Spec.Replicas)
	}
	if env["LITELLM_SALT_KEY"] == "" {
		t.Error("no LITELLM_SALT_KEY: stored api keys would be encrypted with the master key, and unreadable after it is rotated")
	}
}

// TestSecrets checks that the Secrets hold placeholders only (no real secret
// is committed), clearly marked, with valid keys.
func TestSecrets(t *testing.T) {
	m := loadManifests(t)
	secrets := objects[*corev1.Secret](m)
	if len(secrets) == 0 {
		t.Fatal("no Secret")
	}
	for _, s := range secrets {
		if len(s.Data) > 0 {
			t.Errorf("%s: use stringData, so the placeholders are readable", m.where(s))
		}
		for k, v := range s.StringData {
			if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
				t.Errorf("%s: key %q: %v", m.where(s), k, errs)
			}
			if !strings.Contains(v, "REPLACE-ME") {
				t.Errorf("%s: %s is not a REPLACE-ME placeholder: never commit a real secret", m.where(s), k)
			}
		}
	}
}

var envRefRE = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// TestContainerEnv checks every container's environment: the Secrets,
// ConfigMaps and keys it references exist, and each $(VAR) in its command,
// args and env values names a variable it sets (Kubernetes leaves an
// unknown reference as it is).
func TestContainerEnv(t *testing.T) {
	m := loadManifests(t)
	for _, d := range objects[*appsv1.Deployment](m) {
		for i := range d.Spec.Template.Spec.Containers {
			c := &d.Spec.Template.Spec.Containers[i]
			env := containerEnv(t, m, c)
			var texts []string
			texts = append(texts, c.Command...)
			texts = append(texts, c.Args...)
			for _, e := range c.Env {
				texts = append(texts, e.Value)
			}
			for _, s := range texts {
				for _, ref := range envRefRE.FindAllStringSubmatch(s, -1) {
					if _, ok := env[ref[1]]; !ok {
						t.Errorf("%s: container %s: $(%s) names no variable of the container", m.where(d), c.Name, ref[1])
					}
				}
			}
		}
	}
}

// TestServices checks that each Service selects the pods of exactly one
// Deployment and that its target ports are ports those pods declare.
func TestServices(t *testing.T) {
	m := loadManifests(t)
	deps := objects[*appsv1.Deployment](m)
	for _, s := range objects[*corev1.Service](m) {
		where := m.where(s)
		if len(s.Spec.Selector) == 0 {
			t.Errorf("%s: no selector", where)
			continue
		}
		var target *appsv1.Deployment
		for _, d := range deps {
			if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
				if target != nil {
					t.Errorf("%s: selects the pods of %s and of %s", where, m.where(target), m.where(d))
				}
				target = d
			}
		}
		if target == nil {
			t.Errorf("%s: selector %v matches no Deployment's pods", where, s.Spec.Selector)
			continue
		}
		if len(s.Spec.Ports) == 0 {
			t.Errorf("%s: no ports", where)
		}
		for _, p := range s.Spec.Ports {
			if errs := validation.IsValidPortNum(int(p.Port)); len(errs) > 0 {
				t.Errorf("%s: port %d: %v", where, p.Port, errs)
			}
			tp := p.TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(p.Port) // the default
			}
			found := false
			for i := range target.Spec.Template.Spec.Containers {
				if _, ok := containerPort(&target.Spec.Template.Spec.Containers[i], tp); ok {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: port %q targetPort %s is not a container port of %s", where, p.Name, tp.String(), m.where(target))
			}
		}
	}
}

var haproxyTimeoutRE = regexp.MustCompile(`^\d+(us|ms|s|m|h|d)?$`)

// TestRoute checks the OpenShift Route against the Service it exposes.
func TestRoute(t *testing.T) {
	m := loadManifests(t)
	routes := objects[*route](m)
	if len(routes) == 0 {
		t.Fatal("no Route")
	}
	for _, r := range routes {
		where := m.where(r)
		if r.Spec.To.Kind != "Service" {
			t.Errorf("%s: spec.to.kind %q: want Service", where, r.Spec.To.Kind)
		}
		svc := named[*corev1.Service](m, r.Spec.To.Name)
		if svc == nil {
			t.Errorf("%s: Service %q is not in the manifests", where, r.Spec.To.Name)
			continue
		}
		if r.Spec.Port == nil {
			t.Errorf("%s: no spec.port: name the Service's port", where)
		} else {
			tp := r.Spec.Port.TargetPort
			found := slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
				// OpenShift matches a name against the Service's port names
				// (the endpoints' names), a number against the pods' port.
				return tp.Type == intstr.String && p.Name == tp.StrVal ||
					tp.Type == intstr.Int && (p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == tp.IntVal)
			})
			if !found {
				t.Errorf("%s: spec.port.targetPort %s is not a port of Service %s", where, tp.String(), svc.Name)
			}
		}
		tls := r.Spec.TLS
		switch {
		case tls == nil:
			t.Errorf("%s: no TLS", where)
		case tls.Termination != "edge":
			t.Errorf("%s: tls.termination %q: the gateway serves plain HTTP, so edge", where, tls.Termination)
		case !slices.Contains([]string{"", "Allow", "Redirect", "None"}, tls.InsecureEdgeTerminationPolicy):
			t.Errorf("%s: tls.insecureEdgeTerminationPolicy %q", where, tls.InsecureEdgeTerminationPolicy)
		case tls.InsecureEdgeTerminationPolicy == "Allow":
			t.Errorf("%s: Allow would send the master key over plain HTTP", where)
		}
		if v, ok := r.Annotations["haproxy.router.openshift.io/timeout"]; !ok {
			t.Errorf("%s: no haproxy.router.openshift.io/timeout: the router's 30 s default cuts long completions", where)
		} else if !haproxyTimeoutRE.MatchString(v) {
			t.Errorf("%s: haproxy.router.openshift.io/timeout %q is not a duration like 10m", where, v)
		}
		if r.Spec.Host != "" {
			if errs := validation.IsDNS1123Subdomain(r.Spec.Host); len(errs) > 0 {
				t.Errorf("%s: host %q: %v", where, r.Spec.Host, errs)
			}
		}
	}
}
