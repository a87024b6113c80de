"""The rules of the product. No Chalice imports here: plain values in, plain values out."""
