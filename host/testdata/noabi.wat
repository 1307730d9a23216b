;; A module that is valid WebAssembly but implements no sluice ABI.
(module
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
)
