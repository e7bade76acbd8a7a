"""modempool"""
