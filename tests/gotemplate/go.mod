// The Go templating Harness's Kubernetes steps render manifests with (text/template, Sprig, the
// values as YAML), at the versions Harness pins: test tooling for tests/it/harness.rs, built by the
// test support into the target folder, never part of krobs-build.
module krobs.test/gotemplate

go 1.24.0

require (
	github.com/Masterminds/sprig v2.22.0+incompatible
	github.com/ghodss/yaml v1.0.0
)

require (
	github.com/Masterminds/goutils v1.1.1 // indirect
	github.com/Masterminds/semver v1.5.0 // indirect
	github.com/google/uuid v1.3.0 // indirect
	github.com/huandu/xstrings v1.3.2 // indirect
	github.com/imdario/mergo v0.3.13 // indirect
	github.com/mitchellh/copystructure v1.2.0 // indirect
	github.com/mitchellh/reflectwalk v1.0.2 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/crypto v0.45.0 // indirect
	gopkg.in/yaml.v2 v2.4.0 // indirect
)
