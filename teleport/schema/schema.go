// Package schema relates Teleport's typed audit events (teleport/api
// types/events, gogo protobuf) to the JSON keys of their unstructured form,
// for the legacy RPCs that carry typed events.
//
// A typed event converted with events.ToUnstructured has a key for every
// field of the converting side's schema: a message-typed field (a time, a
// metadata block) that json.Marshal cannot omit shows up with its zero
// value even when the sender's older schema lacks it (lock.created's
// "lock", added after Teleport 13). gogo always encodes a non-nullable
// message field, so on the wire such a field is present exactly when the
// sender's schema has it: that tells the keys the sender's own conversion
// would have written.
package schema

import (
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/teleport-fluent-bit/teleport-fluent-bit/record"
)

// Field is a JSON key of an event backed by a non-nullable message field,
// and the path of protobuf field numbers to it (through the embedded
// metadata messages, whose keys are the event's own).
type Field struct {
	Key  string
	Path []uint64
}

var cache sync.Map // reflect.Type → []Field

// MessageFields lists the Fields of the event struct type t (a pointer or
// a struct); the result is shared and must not be changed.
func MessageFields(t reflect.Type) []Field {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if f, ok := cache.Load(t); ok {
		return f.([]Field)
	}
	out := messageFields(t, nil, nil)
	cache.Store(t, out)
	return out
}

func messageFields(t reflect.Type, path []uint64, out []Field) []Field {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		num := fieldNumber(f.Tag.Get("protobuf"))
		if num == 0 || f.Type.Kind() != reflect.Struct {
			continue // scalars, pointers, maps, lists: absent when zero on any schema
		}
		key, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		p := append(append([]uint64(nil), path...), num)
		switch {
		case f.Anonymous && key == "":
			out = messageFields(f.Type, p, out)
		case key != "" && key != "-":
			out = append(out, Field{Key: key, Path: p})
		}
	}
	return out
}

// fieldNumber reads the number of a protobuf struct tag ("bytes,5,opt,...").
func fieldNumber(tag string) uint64 {
	parts := strings.SplitN(tag, ",", 3)
	if len(parts) < 2 {
		return 0
	}
	n, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0
	}
	return n
}

// Present tells whether path is present in msg, an event message's wire
// encoding.
func Present(msg []byte, path []uint64) bool {
	for _, num := range path {
		var found []byte
		ok := false
		for p := msg; len(p) > 0; {
			n, wt, _, data, k := record.WireField(p)
			if k == 0 {
				return false
			}
			if n == num && wt == 2 {
				found, ok = data, true // the last occurrence wins, as in proto
			}
			p = p[k:]
		}
		if !ok {
			return false
		}
		msg = found
	}
	return true
}

// Event returns the event message inside an events.OneOf's wire encoding
// (its one field), or nil.
func Event(oneOf []byte) []byte {
	var ev []byte
	for p := oneOf; len(p) > 0; {
		_, wt, _, data, k := record.WireField(p)
		if k == 0 {
			return nil
		}
		if wt == 2 {
			ev = data
		}
		p = p[k:]
	}
	return ev
}
