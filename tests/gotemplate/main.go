// gotemplate renders one Go template the way Harness renders a Kubernetes manifest of a service:
// the values files are read as YAML (later files win) and given to the template as `.Values`;
// the functions are Sprig's text functions without `env` and `expandenv`, and `toYaml`,
// `fromYaml`, `toJson`, `fromJson`. It prints `---` and the result, as Harness's tool does.
//
//	gotemplate -t TEMPLATE [-f VALUES]...
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

type valueFiles []string

func (v *valueFiles) String() string     { return strings.Join(*v, ",") }
func (v *valueFiles) Set(f string) error { *v = append(*v, f); return nil }

func fail(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gotemplate:", err)
		os.Exit(1)
	}
}

func functions() template.FuncMap {
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	funcs["toYaml"] = func(v interface{}) string {
		out, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return string(out)
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		out, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(out)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	return funcs
}

func main() {
	var files valueFiles
	path := flag.String("t", "", "the template file")
	flag.Var(&files, "f", "a values file (repeatable)")
	flag.Parse()
	if *path == "" {
		fail(fmt.Errorf("usage: gotemplate -t TEMPLATE [-f VALUES]..."))
	}
	values := map[string]interface{}{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		fail(err)
		read := map[string]interface{}{}
		fail(yaml.Unmarshal(data, &read))
		for k, v := range read {
			values[k] = v
		}
	}
	text, err := os.ReadFile(*path)
	fail(err)
	tpl, err := template.New(*path).Funcs(functions()).Parse(string(text))
	fail(err)
	var out bytes.Buffer
	fail(tpl.Execute(&out, map[string]interface{}{"Values": values}))
	fmt.Println("---")
	fmt.Println(out.String())
}
