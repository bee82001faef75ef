package simulate

import "github.com/producerd/producerd/internal/tomlx"

// Scenarios are decoded strictly by internal/tomlx, the decoder producer.toml uses, so
// every problem is a *config.Error (a tomlx.Error) naming the file, the line and the key.

// locate maps the key paths of src ("fault[1].to", "strategy[0].settings.preset") to
// their lines (see tomlx.Locator).
func locate(src string) map[string]int { return tomlx.NewLocator(src).Lines() }
