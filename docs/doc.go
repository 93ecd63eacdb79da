// Package docs holds no code: its tests check the project's Markdown
// (README.md, docs/ and every other .md file in the repository) for
// relative links and anchors that lead nowhere, and that every page in
// docs/ is listed in the README's index, and that the examples' teleport
// inputs and TOML files use only keys the plugin reads. `make docs-check`
// runs them with the configuration reference check in conf/.
package docs
