// The real node's sandbox ("pause") binary; see main.go.
module clone-operator.local/cluster/pause

go 1.24.0
