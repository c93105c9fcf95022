package compat

// The buf rule about default values, FIELD_SAME_DEFAULT, with the reading
// and lenient comparison of defaults of buf's field_default.go.

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// fieldSameDefault is buf's FIELD_SAME_DEFAULT (handleBreakingFieldSameDefault):
// a reader fills absent scalar fields with its default, so changing it changes
// what old data means.
func fieldSameDefault(r *bufReport, previous, current *bufImage) {
	forEachFieldPair(previous, current, func(pf, cf protoreflect.FieldDescriptor) {
		if !canHaveDefault(pf) || !canHaveDefault(cf) {
			return
		}
		pd, cd := getDefault(pf), getDefault(cf)
		if pd.isZero() && cd.isZero() {
			return
		}
		if !defaultsEqual(pd, cd) {
			r.add(cf, `%s changed default value from %v to %v.`, fieldDescription(cf), pd.printable, cd.printable)
		}
	})
}

func canHaveDefault(f protoreflect.FieldDescriptor) bool {
	return !f.IsList() && !f.IsMap() && f.Message() == nil
}

type fieldDefault struct {
	comparable any
	printable  any
}

func (d fieldDefault) isZero() bool {
	return d.comparable == nil || reflect.ValueOf(d.comparable).IsZero()
}

func getDefault(f protoreflect.FieldDescriptor) fieldDefault {
	def := f.Default()
	switch f.Kind() {
	case protoreflect.BytesKind:
		data := def.Bytes()
		parts := make([]string, len(data))
		for i, b := range data {
			parts[i] = fmt.Sprintf("0x%X", b)
		}
		return fieldDefault{comparable: string(data), printable: "[" + strings.Join(parts, ",") + "]"}
	case protoreflect.StringKind:
		return fieldDefault{comparable: def.String(), printable: strconv.Quote(def.String())}
	case protoreflect.EnumKind:
		number := def.Enum()
		printable := fmt.Sprintf("%s.%d(?)", f.Enum().Name(), number)
		if v := f.Enum().Values().ByNumber(number); v != nil {
			printable = fmt.Sprintf("%s.%s", f.Enum().Name(), v.Name())
		}
		return fieldDefault{comparable: int32(number), printable: printable}
	}
	if !def.IsValid() {
		return fieldDefault{}
	}
	return fieldDefault{comparable: def.Interface(), printable: def.Interface()}
}

// defaultsEqual compares leniently across kinds as buf does: strings with
// bytes, numbers (bool, enum, ints, floats) as exact big floats, float with
// double at float precision.
func defaultsEqual(previous, current fieldDefault) bool {
	_, prevIsString := previous.comparable.(string)
	_, curIsString := current.comparable.(string)
	if prevIsString || curIsString {
		return previous.comparable == current.comparable
	}
	switch p := previous.comparable.(type) {
	case float32:
		if c, ok := current.comparable.(float64); ok {
			return math.IsNaN(float64(p)) && math.IsNaN(c) || p == float32(c)
		}
	case float64:
		if c, ok := current.comparable.(float32); ok {
			return math.IsNaN(p) && math.IsNaN(float64(c)) || float32(p) == c
		}
	}
	pv, pNaN := asBigFloat(previous.comparable)
	cv, cNaN := asBigFloat(current.comparable)
	if pNaN && cNaN {
		return true
	}
	if pNaN != cNaN {
		return false
	}
	if pv == nil || cv == nil {
		return previous.comparable == current.comparable
	}
	return pv.Cmp(cv) == 0
}

func asBigFloat(v any) (*big.Float, bool) {
	switch v := v.(type) {
	case bool:
		if v {
			return big.NewFloat(1), false
		}
		return big.NewFloat(0), false
	case int32:
		return new(big.Float).SetInt64(int64(v)), false
	case int64:
		return new(big.Float).SetInt64(v), false
	case uint32:
		return new(big.Float).SetUint64(uint64(v)), false
	case uint64:
		return new(big.Float).SetUint64(v), false
	case float32:
		if math.IsNaN(float64(v)) {
			return nil, true
		}
		return big.NewFloat(float64(v)), false
	case float64:
		if math.IsNaN(v) {
			return nil, true
		}
		return big.NewFloat(v), false
	}
	return nil, false
}
